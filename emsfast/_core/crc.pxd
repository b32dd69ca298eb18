# csrc/crc32c.c is linked into every extension, so other .pyx files cimport this
# declaration and call the C function directly.
from libc.stdint cimport uint32_t


cdef extern from "crc32c.h" nogil:
    uint32_t ems_crc32c(uint32_t crc, const void *buf, size_t len)
