"""Frame codec: incremental decoder and batching encoder (docs/protocol.md §1, §3)."""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from libc.stdint cimport int16_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from emsfast._core.hton cimport (
    ems_load_u16,
    ems_load_u32,
    ems_load_u64,
    ems_store_u16,
    ems_store_u32,
    ems_store_u64,
)

import msgpack

from emsfast.errors import FrameError, FrameSizeError

include "consts.pxi"

cdef object _packb = msgpack.packb
cdef object _unpackb = msgpack.unpackb

# Fixed part of each body (docs/protocol.md §3); -1 marks an unknown type, which
# is what a garbage stream trips first.
cdef int16_t _MIN_BODY[256]
# Flag bits each type may carry; any other bit set is a protocol error.
cdef uint8_t _FLAG_MASK[256]
cdef dict _NAMES = {
    FRAME_HELLO: "HELLO", FRAME_WELCOME: "WELCOME", FRAME_REFUSED: "REFUSED",
    FRAME_REQUEST: "REQUEST", FRAME_REPLY: "REPLY", FRAME_ERROR: "ERROR",
    FRAME_PUBLISH: "PUBLISH", FRAME_CONFIRM: "CONFIRM", FRAME_SEND_FAIL: "SEND_FAIL",
    FRAME_DELIVER: "DELIVER", FRAME_CREDIT: "CREDIT", FRAME_ACK: "ACK",
    FRAME_HEARTBEAT: "HEARTBEAT",
}

cdef enum:
    PUBLISH_FIXED = 12          # u32 producer, u64 seq
    CONFIRM_FIXED = 8           # u32 producer, u32 n
    CONFIRM_PAIR = 16           # u64 seq, u64 message_id
    SEND_FAIL_FIXED = 14        # u32 producer, u64 seq, u16 code
    DELIVER_FIXED = 24          # u32 consumer, u32 count, u64 tag, u64 message_id
    CREDIT_FIXED = 8            # u32 consumer, u32 n
    ACK_FIXED = 8               # u32 session, u32 n
    ACK_TAG = 8                 # u64 tag

# A partial-frame buffer or an encoder buffer larger than this is freed once
# drained, so an idle connection does not keep the memory of its largest frame.
cdef Py_ssize_t _KEEP_CAP = 256 * 1024
cdef uint64_t _U32_MAX = 0xFFFFFFFF


cdef _init_tables():
    cdef int i
    for i in range(256):
        _MIN_BODY[i] = -1
        _FLAG_MASK[i] = 0
    for i in _NAMES:
        _MIN_BODY[i] = 0
    _MIN_BODY[FRAME_PUBLISH] = PUBLISH_FIXED
    _MIN_BODY[FRAME_CONFIRM] = CONFIRM_FIXED
    _MIN_BODY[FRAME_SEND_FAIL] = SEND_FAIL_FIXED
    _MIN_BODY[FRAME_DELIVER] = DELIVER_FIXED
    _MIN_BODY[FRAME_CREDIT] = CREDIT_FIXED
    _MIN_BODY[FRAME_ACK] = ACK_FIXED
    _FLAG_MASK[FRAME_PUBLISH] = PUBLISH_CONFIRM


_init_tables()


cdef inline str _name(uint8_t ftype):
    return _NAMES.get(ftype) or f"0x{ftype:02x}"


cdef int _short_body(uint8_t ftype, Py_ssize_t n, Py_ssize_t fixed) except -1:
    raise FrameError(
        f"{_name(ftype)} frame body of {n} bytes is shorter than its {fixed}-byte header"
    )


cdef class FrameDecoder:
    """Fed arbitrary chunks, returns every complete frame in order."""

    def __cinit__(self):
        self._pbuf = NULL
        self._plen = 0
        self._pcap = 0
        self._want = 0
        self._state = FRAME_STATE_HEADER

    def __init__(self, max_frame):
        self.max_frame = max_frame

    def __dealloc__(self):
        PyMem_Free(self._pbuf)

    @property
    def max_frame(self):
        return self._max_frame

    @max_frame.setter
    def max_frame(self, value):
        # Raised by the server after login; applies to every header from now on.
        if value < 0:
            raise ValueError(f"max_frame must be >= 0, got {value}")
        self._max_frame = value

    @property
    def buffered(self):
        return self._plen

    cdef int _set_state(self, FrameDecoderState new) except -1:
        if self._state == FRAME_STATE_FAILED:
            raise FrameError("frame decoder is unusable after an earlier protocol error")
        if new == self._state:
            raise RuntimeError(f"frame decoder: illegal state change {new} -> {new}")
        self._state = new
        return 0

    cdef int _fail(self) except -1:
        self._state = FRAME_STATE_FAILED
        self._plen = 0
        return 0

    cdef Py_ssize_t _check_header(self, const unsigned char *h) except -1:
        """Validate a buffered header before anything is allocated for its body."""
        cdef uint32_t size = ems_load_u32(h)
        cdef uint8_t ftype = h[4]
        cdef uint8_t flags = h[5]
        cdef uint16_t reserved = ems_load_u16(h + 6)
        cdef int16_t fixed = _MIN_BODY[ftype]
        if fixed < 0:
            raise FrameError(f"unknown frame type 0x{ftype:02x}")
        if reserved != 0:
            raise FrameError(
                f"{_name(ftype)} frame has reserved field 0x{reserved:04x}, must be 0")
        if size > self._max_frame:
            raise FrameSizeError(size, self._max_frame)
        if flags & ~_FLAG_MASK[ftype]:
            raise FrameError(f"{_name(ftype)} frame has unknown flags 0x{flags:02x}")
        if size < <uint32_t>fixed:
            _short_body(ftype, size, fixed)
        return size

    cdef int _stash(self, const char *p, Py_ssize_t n, Py_ssize_t limit) except -1:
        """Append n bytes to the partial frame; capacity never exceeds ``limit``,
        the frame's full size, so memory follows the bytes actually received."""
        cdef Py_ssize_t need = self._plen + n
        cdef Py_ssize_t cap
        cdef char *nbuf
        if need > self._pcap:
            cap = self._pcap * 2
            if cap < 64:
                cap = 64
            if cap > limit:
                cap = limit
            if cap < need:
                cap = need
            nbuf = <char *>PyMem_Realloc(self._pbuf, <size_t>cap)
            if nbuf == NULL:
                raise MemoryError()
            self._pbuf = nbuf
            self._pcap = cap
        memcpy(self._pbuf + self._plen, p, <size_t>n)
        self._plen = need
        return 0

    cdef Py_ssize_t _finish_partial(self, const char *p, Py_ssize_t n,
                                    list frames) except -1:
        """Complete the frame begun in an earlier chunk; return bytes consumed."""
        cdef Py_ssize_t take
        cdef Py_ssize_t total
        cdef const unsigned char *h
        if self._state == FRAME_STATE_HEADER:
            take = FRAME_HEADER_LEN - self._plen
            if take > n:
                take = n
            self._stash(p, take, FRAME_HEADER_LEN)
            if self._plen < FRAME_HEADER_LEN:
                return take
            self._want = self._check_header(<const unsigned char *>self._pbuf)
            self._set_state(FRAME_STATE_BODY)
        else:
            take = 0
        total = FRAME_HEADER_LEN + self._want
        if total - self._plen < n - take:
            n = take + (total - self._plen)
        self._stash(p + take, n - take, total)
        if self._plen < total:
            return n
        h = <const unsigned char *>self._pbuf
        frames.append((h[4], h[5],
                       PyBytes_FromStringAndSize(self._pbuf + FRAME_HEADER_LEN, self._want)))
        self._plen = 0
        if self._pcap > _KEEP_CAP:
            PyMem_Free(self._pbuf)
            self._pbuf = NULL
            self._pcap = 0
        self._set_state(FRAME_STATE_HEADER)
        return n

    cdef Py_ssize_t _scan(self, const char *p, Py_ssize_t off, Py_ssize_t n,
                          list frames) except -1:
        """Slice every frame lying wholly inside p[off:n]; stash the tail."""
        cdef Py_ssize_t size
        cdef const unsigned char *h
        while n - off >= FRAME_HEADER_LEN:
            h = <const unsigned char *>p + off
            size = self._check_header(h)
            if n - off - FRAME_HEADER_LEN < size:
                # Header already checked: the stash grows only as bytes arrive.
                self._stash(p + off, n - off, FRAME_HEADER_LEN + size)
                self._want = size
                self._set_state(FRAME_STATE_BODY)
                return n
            frames.append((h[4], h[5],
                           PyBytes_FromStringAndSize(p + off + FRAME_HEADER_LEN, size)))
            off += FRAME_HEADER_LEN + size
        if off < n:
            self._stash(p + off, n - off, FRAME_HEADER_LEN)
        return n

    cdef list _feed(self, const char *p, Py_ssize_t n):
        cdef list frames = []
        cdef Py_ssize_t off = 0
        if self._state == FRAME_STATE_FAILED:
            raise FrameError("frame decoder is unusable after an earlier protocol error")
        try:
            if self._plen:
                off = self._finish_partial(p, n, frames)
            if off < n:
                self._scan(p, off, n, frames)
        except BaseException:
            self._fail()
            raise
        return frames

    def feed(self, data):
        """Buffer ``data`` and return ``[(type, flags, body), ...]`` for each complete frame."""
        cdef Py_buffer view
        if PyBytes_CheckExact(data):
            return self._feed(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            return self._feed(<const char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def check_eof(self):
        """Raise FrameError if the stream ended inside a frame."""
        cdef Py_ssize_t have = self._plen
        cdef Py_ssize_t total
        if have == 0:
            return
        # Inside a header the frame's size is unknown; report the header's 8.
        total = FRAME_HEADER_LEN + self._want if have >= FRAME_HEADER_LEN else FRAME_HEADER_LEN
        self._fail()
        raise FrameError(f"connection closed inside a frame ({have} of {total} bytes)")


cdef class FrameEncoder:
    """Appends frames into one growing buffer; ``take()`` returns and resets it."""

    def __cinit__(self):
        self._buf = NULL
        self._len = 0
        self._cap = 0

    def __dealloc__(self):
        PyMem_Free(self._buf)

    def __len__(self):
        return self._len

    cdef char *_reserve(self, Py_ssize_t n) except NULL:
        """Make room for n more bytes; return where they go (``_len`` unchanged)."""
        cdef Py_ssize_t need = self._len + n
        cdef Py_ssize_t cap
        cdef char *nbuf
        if need > self._cap:
            cap = self._cap * 2
            if cap < 4096:
                cap = 4096
            if cap < need:
                cap = need
            nbuf = <char *>PyMem_Realloc(self._buf, <size_t>cap)
            if nbuf == NULL:
                raise MemoryError()
            self._buf = nbuf
            self._cap = cap
        return self._buf + self._len

    cdef char *_begin(self, uint8_t ftype, uint8_t flags, Py_ssize_t size) except NULL:
        """Reserve a whole frame and write its header; the caller fills the body
        and then commits with ``_len += FRAME_HEADER_LEN + size``, so a failure
        half-way leaves no partial frame behind."""
        cdef char *h
        if <uint64_t>size > _U32_MAX:
            raise ValueError(f"frame body of {size} bytes does not fit the u32 length")
        h = self._reserve(FRAME_HEADER_LEN + size)
        ems_store_u32(h, <uint32_t>size)
        h[4] = <char>ftype
        h[5] = <char>flags
        ems_store_u16(h + 6, 0)
        return h + FRAME_HEADER_LEN

    cdef int _raw(self, uint8_t ftype, uint8_t flags, const char *body,
                  Py_ssize_t n) except -1:
        cdef char *b = self._begin(ftype, flags, n)
        memcpy(b, body, <size_t>n)
        self._len += FRAME_HEADER_LEN + n
        return 0

    cdef int _publish(self, uint32_t producer, uint64_t seq, uint8_t flags,
                      const char *blob, Py_ssize_t n) except -1:
        cdef char *b = self._begin(FRAME_PUBLISH, flags, PUBLISH_FIXED + n)
        ems_store_u32(b, producer)
        ems_store_u64(b + 4, seq)
        memcpy(b + PUBLISH_FIXED, blob, <size_t>n)
        self._len += FRAME_HEADER_LEN + PUBLISH_FIXED + n
        return 0

    cdef int _deliver(self, uint32_t consumer, uint32_t delivery_count, uint64_t tag,
                      uint64_t message_id, const char *blob, Py_ssize_t n) except -1:
        cdef char *b = self._begin(FRAME_DELIVER, 0, DELIVER_FIXED + n)
        ems_store_u32(b, consumer)
        ems_store_u32(b + 4, delivery_count)
        ems_store_u64(b + 8, tag)
        ems_store_u64(b + 16, message_id)
        memcpy(b + DELIVER_FIXED, blob, <size_t>n)
        self._len += FRAME_HEADER_LEN + DELIVER_FIXED + n
        return 0

    def raw(self, uint8_t ftype, uint8_t flags, body):
        """Append any frame as given; no checks, so tests can build bad frames too."""
        cdef Py_buffer view
        if PyBytes_CheckExact(body):
            self._raw(ftype, flags, PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))
            return
        PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
        try:
            self._raw(ftype, flags, <const char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def control(self, uint8_t ftype, obj):
        """Append a frame whose body is ``msgpack.packb(obj)``."""
        cdef bytes body = _packb(obj)
        self._raw(ftype, 0, PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))

    def publish(self, uint32_t producer, uint64_t seq, uint8_t flags, blob):
        cdef Py_buffer view
        if PyBytes_CheckExact(blob):
            self._publish(producer, seq, flags, PyBytes_AS_STRING(blob),
                          PyBytes_GET_SIZE(blob))
            return
        PyObject_GetBuffer(blob, &view, PyBUF_SIMPLE)
        try:
            self._publish(producer, seq, flags, <const char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def deliver(self, uint32_t consumer, uint32_t delivery_count, uint64_t tag,
                uint64_t message_id, blob):
        cdef Py_buffer view
        if PyBytes_CheckExact(blob):
            self._deliver(consumer, delivery_count, tag, message_id,
                          PyBytes_AS_STRING(blob), PyBytes_GET_SIZE(blob))
            return
        PyObject_GetBuffer(blob, &view, PyBUF_SIMPLE)
        try:
            self._deliver(consumer, delivery_count, tag, message_id,
                          <const char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)

    def confirm(self, uint32_t producer, pairs):
        """One CONFIRM frame for ``[(seq, message_id), ...]``."""
        cdef list items = list(pairs)
        cdef Py_ssize_t count = len(items)
        cdef Py_ssize_t size = CONFIRM_FIXED + CONFIRM_PAIR * count
        cdef Py_ssize_t at = self._len + FRAME_HEADER_LEN
        cdef Py_ssize_t i
        cdef uint64_t seq, message_id
        if <uint64_t>count > _U32_MAX:
            raise ValueError(f"CONFIRM of {count} pairs does not fit the u32 count")
        self._begin(FRAME_CONFIRM, 0, size)
        ems_store_u32(self._buf + at, producer)
        ems_store_u32(self._buf + at + 4, <uint32_t>count)
        for i in range(count):
            seq, message_id = items[i]
            # Converting an int may run Python code; re-derive the pointer and
            # make sure the reservation still stands.
            if at + size > self._cap:
                raise RuntimeError("FrameEncoder changed while encoding CONFIRM")
            ems_store_u64(self._buf + at + CONFIRM_FIXED + CONFIRM_PAIR * i, seq)
            ems_store_u64(self._buf + at + CONFIRM_FIXED + CONFIRM_PAIR * i + 8, message_id)
        self._len = at + size
        return None

    def send_fail(self, uint32_t producer, uint64_t seq, uint16_t code, str text):
        # "replace" so a stray surrogate cannot yield a body the peer must reject.
        cdef bytes raw = text.encode("utf-8", "replace")
        cdef Py_ssize_t n = PyBytes_GET_SIZE(raw)
        cdef char *b = self._begin(FRAME_SEND_FAIL, 0, SEND_FAIL_FIXED + n)
        ems_store_u32(b, producer)
        ems_store_u64(b + 4, seq)
        ems_store_u16(b + 12, code)
        memcpy(b + SEND_FAIL_FIXED, PyBytes_AS_STRING(raw), <size_t>n)
        self._len += FRAME_HEADER_LEN + SEND_FAIL_FIXED + n

    def credit(self, uint32_t consumer, uint32_t n):
        cdef char *b = self._begin(FRAME_CREDIT, 0, CREDIT_FIXED)
        ems_store_u32(b, consumer)
        ems_store_u32(b + 4, n)
        self._len += FRAME_HEADER_LEN + CREDIT_FIXED

    def ack(self, uint32_t session, tags):
        cdef list items = list(tags)
        cdef Py_ssize_t count = len(items)
        cdef Py_ssize_t size = ACK_FIXED + ACK_TAG * count
        cdef Py_ssize_t at = self._len + FRAME_HEADER_LEN
        cdef Py_ssize_t i
        cdef uint64_t tag
        if <uint64_t>count > _U32_MAX:
            raise ValueError(f"ACK of {count} tags does not fit the u32 count")
        self._begin(FRAME_ACK, 0, size)
        ems_store_u32(self._buf + at, session)
        ems_store_u32(self._buf + at + 4, <uint32_t>count)
        for i in range(count):
            tag = items[i]
            if at + size > self._cap:
                raise RuntimeError("FrameEncoder changed while encoding ACK")
            ems_store_u64(self._buf + at + ACK_FIXED + ACK_TAG * i, tag)
        self._len = at + size

    def heartbeat(self):
        self._begin(FRAME_HEARTBEAT, 0, 0)
        self._len += FRAME_HEADER_LEN

    def take(self):
        """Return everything appended since the last take and empty the buffer."""
        cdef bytes out = PyBytes_FromStringAndSize(self._buf, self._len)
        self._len = 0
        if self._cap > _KEEP_CAP:
            PyMem_Free(self._buf)
            self._buf = NULL
            self._cap = 0
        return out


def unpack_control(body):
    """Decode a msgpack control body; FrameError unless it is a map with str keys."""
    cdef Py_ssize_t n = len(body)
    try:
        # Every size the peer controls is capped by the body it actually sent.
        obj = _unpackb(body, raw=False, strict_map_key=True, max_str_len=n,
                       max_bin_len=n, max_array_len=n, max_map_len=n, max_ext_len=n)
    except Exception as exc:
        raise FrameError(f"control frame body is not valid msgpack: {exc}") from exc
    if type(obj) is not dict:
        raise FrameError(f"control frame body is a {type(obj).__name__}, expected a map")
    for key in <dict>obj:
        if type(key) is not str:
            raise FrameError(f"control frame map has a non-string key {key!r:.40}")
    return obj


cdef inline int _exact(uint8_t ftype, Py_ssize_t n, uint64_t want, uint32_t count,
                       str what) except -1:
    if <uint64_t>n != want:
        raise FrameError(f"{_name(ftype)} frame body of {n} bytes does not hold "
                         f"{count} {what} ({want} bytes)")
    return 0


def parse_publish(body):
    """(producer, seq, blob)"""
    cdef Py_buffer view
    cdef const char *p
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        p = <const char *>view.buf
        if view.len < PUBLISH_FIXED:
            _short_body(FRAME_PUBLISH, view.len, PUBLISH_FIXED)
        return (ems_load_u32(p), ems_load_u64(p + 4),
                PyBytes_FromStringAndSize(p + PUBLISH_FIXED, view.len - PUBLISH_FIXED))
    finally:
        PyBuffer_Release(&view)


def parse_deliver(body):
    """(consumer, delivery_count, tag, message_id, blob)"""
    cdef Py_buffer view
    cdef const char *p
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        p = <const char *>view.buf
        if view.len < DELIVER_FIXED:
            _short_body(FRAME_DELIVER, view.len, DELIVER_FIXED)
        return (ems_load_u32(p), ems_load_u32(p + 4), ems_load_u64(p + 8),
                ems_load_u64(p + 16),
                PyBytes_FromStringAndSize(p + DELIVER_FIXED, view.len - DELIVER_FIXED))
    finally:
        PyBuffer_Release(&view)


def parse_confirm(body):
    """(producer, [(seq, message_id), ...])"""
    cdef Py_buffer view
    cdef const char *p
    cdef uint32_t count
    cdef Py_ssize_t i
    cdef list pairs
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        p = <const char *>view.buf
        if view.len < CONFIRM_FIXED:
            _short_body(FRAME_CONFIRM, view.len, CONFIRM_FIXED)
        count = ems_load_u32(p + 4)
        # Exact length first: the list is sized by bytes the peer really sent.
        _exact(FRAME_CONFIRM, view.len, CONFIRM_FIXED + <uint64_t>CONFIRM_PAIR * count,
               count, "pairs")
        pairs = [None] * count
        for i in range(count):
            pairs[i] = (ems_load_u64(p + CONFIRM_FIXED + CONFIRM_PAIR * i),
                        ems_load_u64(p + CONFIRM_FIXED + CONFIRM_PAIR * i + 8))
        return (ems_load_u32(p), pairs)
    finally:
        PyBuffer_Release(&view)


def parse_send_fail(body):
    """(producer, seq, code, text)"""
    cdef Py_buffer view
    cdef const char *p
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        p = <const char *>view.buf
        if view.len < SEND_FAIL_FIXED:
            _short_body(FRAME_SEND_FAIL, view.len, SEND_FAIL_FIXED)
        try:
            text = p[SEND_FAIL_FIXED:view.len].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FrameError(f"SEND_FAIL frame text is not valid UTF-8: {exc}") from exc
        return (ems_load_u32(p), ems_load_u64(p + 4), ems_load_u16(p + 12), text)
    finally:
        PyBuffer_Release(&view)


def parse_credit(body):
    """(consumer, n)"""
    cdef Py_buffer view
    cdef const char *p
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        p = <const char *>view.buf
        if view.len < CREDIT_FIXED:
            _short_body(FRAME_CREDIT, view.len, CREDIT_FIXED)
        if view.len != CREDIT_FIXED:
            raise FrameError(f"CREDIT frame body of {view.len} bytes, expected {CREDIT_FIXED}")
        return (ems_load_u32(p), ems_load_u32(p + 4))
    finally:
        PyBuffer_Release(&view)


def parse_ack(body):
    """(session, [tag, ...])"""
    cdef Py_buffer view
    cdef const char *p
    cdef uint32_t count
    cdef Py_ssize_t i
    cdef list tags
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        p = <const char *>view.buf
        if view.len < ACK_FIXED:
            _short_body(FRAME_ACK, view.len, ACK_FIXED)
        count = ems_load_u32(p + 4)
        _exact(FRAME_ACK, view.len, ACK_FIXED + <uint64_t>ACK_TAG * count, count, "tags")
        tags = [None] * count
        for i in range(count):
            tags[i] = ems_load_u64(p + ACK_FIXED + ACK_TAG * i)
        return (ems_load_u32(p), tags)
    finally:
        PyBuffer_Release(&view)
