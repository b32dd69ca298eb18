/* CRC32C (Castagnoli), the checksum on store records. */
#ifndef EMS_CRC32C_H
#define EMS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* setup.py links every csrc file into every extension: hidden visibility keeps
 * each .so calling its own copy, with no interposition and no PLT hop. */
#if defined(__GNUC__) || defined(__clang__)
#define EMS_HIDDEN __attribute__((visibility("hidden")))
#else
#define EMS_HIDDEN
#endif

/* Continue a CRC32C over buf[0:len]; start with crc = 0. Chaining holds:
 * ems_crc32c(ems_crc32c(0, a, n), b, m) == crc of a followed by b. */
EMS_HIDDEN uint32_t ems_crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* EMS_CRC32C_H */
