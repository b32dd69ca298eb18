from libc.stdint cimport int64_t, uint8_t, uint32_t


# The fixed 24-byte header of a message blob (docs/protocol.md §5).
cdef struct MessageHeader:
    uint8_t body_type
    uint8_t delivery_mode
    uint8_t priority
    uint8_t flags
    uint32_t meta_len
    int64_t timestamp
    int64_t expiration


# Validate the header of blob p[0:n] (meta_len included) and fill *out;
# FrameError if the blob is malformed. For other .pyx files on the hot path.
cdef int read_header(const char *p, Py_ssize_t n, MessageHeader *out) except -1
