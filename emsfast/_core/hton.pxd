# Little-endian loads/stores from csrc/hton.h (static inline C, no runtime module).
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t


cdef extern from "hton.h" nogil:
    uint16_t ems_load_u16(const void *p)
    uint32_t ems_load_u32(const void *p)
    uint64_t ems_load_u64(const void *p)
    int64_t ems_load_i64(const void *p)
    void ems_store_u16(void *p, uint16_t v)
    void ems_store_u32(void *p, uint32_t v)
    void ems_store_u64(void *p, uint64_t v)
    void ems_store_i64(void *p, int64_t v)
    void ems_store_be16(void *p, uint16_t v)
    void ems_store_be32(void *p, uint32_t v)
    void ems_store_be64(void *p, uint64_t v)
