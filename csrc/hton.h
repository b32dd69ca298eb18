/* Little-endian loads and stores for the wire codec (docs/protocol.md: all
 * integers are little-endian). memcpy keeps unaligned access legal on every
 * target; compilers turn it into a single move. */
#ifndef EMS_HTON_H
#define EMS_HTON_H

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define EMS_BIG_ENDIAN 1
#else
#define EMS_BIG_ENDIAN 0
#endif

#if defined(_MSC_VER)
#include <stdlib.h>
#define ems_bswap32(v) _byteswap_ulong(v)
#define ems_bswap64(v) _byteswap_uint64(v)
#else
#define ems_bswap32(v) __builtin_bswap32(v)
#define ems_bswap64(v) __builtin_bswap64(v)
#endif

static inline uint16_t ems_load_u16(const void *p)
{
    const unsigned char *b = (const unsigned char *)p;
    return (uint16_t)(b[0] | (b[1] << 8));
}

static inline uint32_t ems_load_u32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
#if EMS_BIG_ENDIAN
    v = ems_bswap32(v);
#endif
    return v;
}

static inline uint64_t ems_load_u64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if EMS_BIG_ENDIAN
    v = ems_bswap64(v);
#endif
    return v;
}

static inline int64_t ems_load_i64(const void *p)
{
    return (int64_t)ems_load_u64(p);
}

static inline void ems_store_u16(void *p, uint16_t v)
{
    unsigned char *b = (unsigned char *)p;
    b[0] = (unsigned char)v;
    b[1] = (unsigned char)(v >> 8);
}

static inline void ems_store_u32(void *p, uint32_t v)
{
#if EMS_BIG_ENDIAN
    v = ems_bswap32(v);
#endif
    memcpy(p, &v, sizeof v);
}

static inline void ems_store_u64(void *p, uint64_t v)
{
#if EMS_BIG_ENDIAN
    v = ems_bswap64(v);
#endif
    memcpy(p, &v, sizeof v);
}

static inline void ems_store_i64(void *p, int64_t v)
{
    ems_store_u64(p, (uint64_t)v);
}

/* Big-endian stores, for the msgpack meta block (msgpack numbers are big-endian). */
static inline void ems_store_be16(void *p, uint16_t v)
{
    unsigned char *b = (unsigned char *)p;
    b[0] = (unsigned char)(v >> 8);
    b[1] = (unsigned char)v;
}

static inline void ems_store_be32(void *p, uint32_t v)
{
#if !EMS_BIG_ENDIAN
    v = ems_bswap32(v);
#endif
    memcpy(p, &v, sizeof v);
}

static inline void ems_store_be64(void *p, uint64_t v)
{
#if !EMS_BIG_ENDIAN
    v = ems_bswap64(v);
#endif
    memcpy(p, &v, sizeof v);
}

#endif /* EMS_HTON_H */
