from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef enum FrameDecoderState:
    FRAME_STATE_HEADER = 0      # waiting for (the rest of) a frame header
    FRAME_STATE_BODY = 1        # header checked, waiting for the body
    FRAME_STATE_FAILED = 2      # a protocol error was raised; terminal


cdef class FrameDecoder:
    cdef:
        uint64_t _max_frame
        FrameDecoderState _state
        # A frame that straddles chunks is copied here (header included); a frame
        # that lies inside one chunk is sliced straight out of it.
        char *_pbuf
        Py_ssize_t _plen
        Py_ssize_t _pcap
        Py_ssize_t _want            # body size of the partial frame (BODY state)

    cdef int _set_state(self, FrameDecoderState new) except -1
    cdef int _fail(self) except -1
    cdef Py_ssize_t _check_header(self, const unsigned char *h) except -1
    cdef int _stash(self, const char *p, Py_ssize_t n, Py_ssize_t limit) except -1
    cdef Py_ssize_t _finish_partial(self, const char *p, Py_ssize_t n,
                                    list frames) except -1
    cdef Py_ssize_t _scan(self, const char *p, Py_ssize_t off, Py_ssize_t n,
                          list frames) except -1
    cdef list _feed(self, const char *p, Py_ssize_t n)


cdef class FrameEncoder:
    cdef:
        char *_buf
        Py_ssize_t _len
        Py_ssize_t _cap

    cdef char *_reserve(self, Py_ssize_t n) except NULL
    cdef char *_begin(self, uint8_t ftype, uint8_t flags, Py_ssize_t size) except NULL
    cdef int _raw(self, uint8_t ftype, uint8_t flags, const char *body,
                  Py_ssize_t n) except -1
    cdef int _publish(self, uint32_t producer, uint64_t seq, uint8_t flags,
                      const char *blob, Py_ssize_t n) except -1
    cdef int _deliver(self, uint32_t consumer, uint32_t delivery_count, uint64_t tag,
                      uint64_t message_id, const char *blob, Py_ssize_t n) except -1
