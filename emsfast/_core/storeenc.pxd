from libc.stdint cimport uint8_t, uint32_t

# Record layout: [u8 format version][u8 kind][u32 LE crc32c][payload]. The CRC
# covers key, version, kind and payload, so a record copied under another key
# fails the check too.
cdef enum:
    STORE_FORMAT_VERSION = 1
    STORE_RECORD_HEADER = 6

cdef enum StoreRecordKind:
    REC_MESSAGE = 1
    REC_COUNT = 2
    REC_DURABLE = 3
    REC_DESTINATION = 4
    REC_EPOCH = 5
    REC_FORMAT = 6

cdef uint32_t record_crc(const char *key, Py_ssize_t klen, const char *rec,
                         Py_ssize_t rlen) noexcept nogil
