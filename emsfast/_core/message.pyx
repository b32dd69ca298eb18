"""Message blob codec (docs/protocol.md §5).

The blob travels unchanged from PUBLISH through the store to every DELIVER, so
the server only ever peeks at the fixed header; the meta block (msgpack) is
decoded on the client and for selectors.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_Check,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.dict cimport PyDict_Check
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check
from cpython.long cimport PyLong_AsUnsignedLongLong, PyLong_Check
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

from emsfast._core.hton cimport (
    ems_load_i64,
    ems_load_u32,
    ems_store_be16,
    ems_store_be32,
    ems_store_be64,
    ems_store_i64,
    ems_store_u32,
)

import msgpack

from emsfast.errors import FrameError

include "consts.pxi"


cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL
    long long PyLong_AsLongLongAndOverflow(object v, int *overflow) except? -1

cdef object _unpackb = msgpack.unpackb
# [nil, nil]: the meta block of a message with no headers and no properties.
cdef bytes _EMPTY_META = b"\x92\xc0\xc0"
# Decoded JMS property value types (bool too); None is checked separately.
cdef tuple _SCALARS = (str, int, float, bytes)
cdef uint64_t _U32_MAX = 0xFFFFFFFF


cdef int read_header(const char *p, Py_ssize_t n, MessageHeader *out) except -1:
    cdef const unsigned char *u = <const unsigned char *>p
    if n < MSG_HEADER_LEN:
        raise FrameError(
            f"message blob of {n} bytes is shorter than its {MSG_HEADER_LEN}-byte header")
    out.body_type = u[0]
    out.delivery_mode = u[1]
    out.priority = u[2]
    out.flags = u[3]
    out.meta_len = ems_load_u32(p + 4)
    if out.body_type > BODY_STREAM:
        raise FrameError(f"message body_type {out.body_type} is not one of 0..4")
    if (out.delivery_mode != NON_PERSISTENT and out.delivery_mode != PERSISTENT
            and out.delivery_mode != RELIABLE):
        raise FrameError(f"message delivery_mode {out.delivery_mode} is not 1, 2 or 22")
    if out.priority > 9:
        raise FrameError(f"message priority {out.priority} is above 9")
    if out.meta_len > <uint64_t>(n - MSG_HEADER_LEN):
        raise FrameError(f"message meta block of {out.meta_len} bytes overruns the "
                         f"{n - MSG_HEADER_LEN} bytes after the header")
    out.timestamp = ems_load_i64(p + 8)
    out.expiration = ems_load_i64(p + 16)
    return 0


# The meta block is packed here rather than by msgpack.Packer: a send packs a
# handful of scalars, and building them straight into the blob is several
# times faster. Byte-for-byte the same as msgpack.packb(use_bin_type=True)
# (tests/fuzz compares them). Each helper measures when p is NULL and writes
# otherwise, so one walk sizes the blob and a second fills it.

cdef enum:
    _UNSUPPORTED = -2           # _pack_scalar: not a JMS property type


cdef Py_ssize_t _pack_len(char *p, Py_ssize_t n, uint8_t fix, Py_ssize_t fix_max,
                          uint8_t c8, uint8_t c16, uint8_t c32) except -1:
    """A length-prefixed header (str, bin, map) in its shortest form."""
    if n < fix_max:
        if p:
            p[0] = <char>(fix | n)
        return 1
    if c8 and n < 0x100:
        if p:
            p[0] = <char>c8
            p[1] = <char>n
        return 2
    if n < 0x10000:
        if p:
            p[0] = <char>c16
            ems_store_be16(p + 1, <uint16_t>n)
        return 3
    if <uint64_t>n <= _U32_MAX:
        if p:
            p[0] = <char>c32
            ems_store_be32(p + 1, <uint32_t>n)
        return 5
    raise ValueError(f"message meta value of {n} bytes is too large")


cdef inline Py_ssize_t _pack_fixed(char *p, uint8_t code, uint64_t v, int width):
    if p:
        p[0] = <char>code
        if width == 1:
            p[1] = <char>v
        elif width == 2:
            ems_store_be16(p + 1, <uint16_t>v)
        elif width == 4:
            ems_store_be32(p + 1, <uint32_t>v)
        else:
            ems_store_be64(p + 1, v)
    return 1 + width


cdef Py_ssize_t _pack_int(char *p, object v) except -1:
    cdef int overflow = 0
    cdef long long x = PyLong_AsLongLongAndOverflow(v, &overflow)
    if overflow > 0:
        return _pack_fixed(p, 0xcf, PyLong_AsUnsignedLongLong(v), 8)
    if overflow < 0:
        raise OverflowError(f"message meta int {v} is below -2**63")
    if x >= 0:
        if x < 0x80:
            if p:
                p[0] = <char>x
            return 1
        if x < 0x100:
            return _pack_fixed(p, 0xcc, <uint64_t>x, 1)
        if x < 0x10000:
            return _pack_fixed(p, 0xcd, <uint64_t>x, 2)
        if x < 0x100000000:
            return _pack_fixed(p, 0xce, <uint64_t>x, 4)
        return _pack_fixed(p, 0xcf, <uint64_t>x, 8)
    if x >= -32:
        if p:
            p[0] = <char>x
        return 1
    if x >= -0x80:
        return _pack_fixed(p, 0xd0, <uint64_t>x, 1)
    if x >= -0x8000:
        return _pack_fixed(p, 0xd1, <uint64_t>x, 2)
    if x >= -0x80000000:
        return _pack_fixed(p, 0xd2, <uint64_t>x, 4)
    return _pack_fixed(p, 0xd3, <uint64_t>x, 8)


cdef Py_ssize_t _pack_scalar(char *p, object v) except -1:
    """nil, bool, int, float, str or bytes; _UNSUPPORTED for anything else."""
    cdef Py_ssize_t n, h
    cdef const char *s
    cdef double d
    cdef uint64_t bits
    if v is None:
        if p:
            p[0] = <char>0xc0
        return 1
    if v is True or v is False:
        if p:
            p[0] = <char>(0xc3 if v is True else 0xc2)
        return 1
    if PyLong_Check(v):
        return _pack_int(p, v)
    if PyFloat_Check(v):
        d = PyFloat_AS_DOUBLE(v)
        if p:
            p[0] = <char>0xcb
            memcpy(&bits, &d, 8)
            ems_store_be64(p + 1, bits)
        return 9
    if PyUnicode_Check(v):
        s = PyUnicode_AsUTF8AndSize(v, &n)
        h = _pack_len(p, n, 0xa0, 32, 0xd9, 0xda, 0xdb)
    elif PyBytes_Check(v):
        s = PyBytes_AS_STRING(v)
        n = PyBytes_GET_SIZE(v)
        h = _pack_len(p, n, 0, 0, 0xc4, 0xc5, 0xc6)
    else:
        return _UNSUPPORTED
    if p:
        memcpy(p + h, s, <size_t>n)
    return h + n


cdef Py_ssize_t _pack_map(char *p, object m, str what) except -1:
    """A str-keyed map of scalars; nil when None or empty (protocol.md §5)."""
    cdef Py_ssize_t total, n
    if m is None or (PyDict_Check(m) and not m):
        if p:
            p[0] = <char>0xc0
        return 1
    if not PyDict_Check(m):
        raise TypeError(f"message {what} must be a dict or None, not {type(m).__name__}")
    total = _pack_len(p, len(<dict>m), 0x80, 16, 0, 0xde, 0xdf)
    for key, value in (<dict>m).items():
        if not PyUnicode_Check(key):
            raise TypeError(f"message {what} key {key!r:.40} is not a str")
        total += _pack_scalar(p + total if p else NULL, key)
        n = _pack_scalar(p + total if p else NULL, value)
        if n == _UNSUPPORTED:
            raise TypeError(f"message {what} {key!r:.40} has a {type(value).__name__} "
                            "value; expected None, bool, int, float, str or bytes")
        total += n
    return total


cdef int _check_in_map(object m, str what) except -1:
    if m is None:
        return 0
    if type(m) is not dict:
        raise FrameError(f"message {what} is a {type(m).__name__}, expected a map or nil")
    for key, value in (<dict>m).items():
        if type(key) is not str:
            raise FrameError(f"message {what} key {key!r:.40} is not a string")
        if value is not None and type(value) not in _SCALARS and type(value) is not bool:
            raise FrameError(f"message {what} {key!r:.40} has a {type(value).__name__} value")
    return 0


def encode_message(int body_type, int delivery_mode, int priority, int64_t timestamp,
                   int64_t expiration, headers, properties, body):
    cdef bytes out
    cdef Py_buffer view
    cdef Py_ssize_t meta_len, written
    cdef char *p
    if body_type < 0 or body_type > BODY_STREAM:
        raise ValueError(f"body_type {body_type} is not one of 0..4")
    if (delivery_mode != NON_PERSISTENT and delivery_mode != PERSISTENT
            and delivery_mode != RELIABLE):
        raise ValueError(f"delivery_mode {delivery_mode} is not 1, 2 or 22")
    if priority < 0 or priority > 9:
        raise ValueError(f"priority {priority} is not in 0..9")
    # meta is the array [headers|nil, properties|nil]: 0x92 then two maps.
    meta_len = (1 + _pack_map(NULL, headers, "header")
                + _pack_map(NULL, properties, "property"))
    if <uint64_t>meta_len > _U32_MAX:
        raise ValueError(f"message meta block of {meta_len} bytes does not fit the u32 length")
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        out = PyBytes_FromStringAndSize(NULL, MSG_HEADER_LEN + meta_len + view.len)
        p = PyBytes_AS_STRING(out)
        p[0] = <char>body_type
        p[1] = <char>delivery_mode
        p[2] = <char>priority
        p[3] = 0
        ems_store_u32(p + 4, <uint32_t>meta_len)
        ems_store_i64(p + 8, timestamp)
        ems_store_i64(p + 16, expiration)
        p[MSG_HEADER_LEN] = <char>0x92
        written = 1 + _pack_map(p + MSG_HEADER_LEN + 1, headers, "header")
        written += _pack_map(p + MSG_HEADER_LEN + written, properties, "property")
        if written != meta_len:
            raise RuntimeError("message meta changed while it was being encoded")
        memcpy(p + MSG_HEADER_LEN + meta_len, view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    return out


# The last meta block decoded and its result, as one tuple so that threads
# sharing this module never see a torn (bytes, headers, properties) triple.
# A stream of messages from one producer repeats the same meta block, and
# unpacking it costs more than the rest of decoding the message.
cdef tuple _last_meta = (b"", None, None)


cdef tuple _decode_meta(const char *p, const MessageHeader *h):
    global _last_meta
    cdef uint32_t n = h.meta_len
    cdef const char *m = p + MSG_HEADER_LEN
    cdef tuple last = _last_meta
    cdef bytes last_raw = <bytes>last[0]
    if n == 3 and memcmp(m, PyBytes_AS_STRING(_EMPTY_META), 3) == 0:
        return (None, None)
    if n == 0:
        raise FrameError("message meta block is empty; expected [headers, properties]")
    if <Py_ssize_t>n == PyBytes_GET_SIZE(last_raw) and \
            memcmp(m, PyBytes_AS_STRING(last_raw), n) == 0:
        # Headers are read-only to every caller; properties are handed to the
        # application, so each message gets its own dict.
        properties = last[2]
        return (last[1], None if properties is None else dict(<dict>properties))
    raw = PyBytes_FromStringAndSize(m, n)
    try:
        # Sizes in the meta block are capped by the bytes actually present.
        obj = _unpackb(raw, raw=False, strict_map_key=True,
                       max_str_len=n, max_bin_len=n, max_array_len=n, max_map_len=n,
                       max_ext_len=n)
    except Exception as exc:
        raise FrameError(f"message meta block is not valid msgpack: {exc}") from exc
    if type(obj) is not list or len(<list>obj) != 2:
        raise FrameError("message meta block is not a 2-element array [headers, properties]")
    headers = (<list>obj)[0]
    properties = (<list>obj)[1]
    _check_in_map(headers, "headers")
    _check_in_map(properties, "properties")
    _last_meta = (raw, headers, None if properties is None else dict(<dict>properties))
    return (headers, properties)


def peek_message(blob):
    """Validate the fixed header and meta length; return
    (body_type, delivery_mode, priority, timestamp, expiration). FrameError if bad."""
    cdef MessageHeader h
    cdef Py_buffer view
    if PyBytes_CheckExact(blob):
        read_header(PyBytes_AS_STRING(blob), PyBytes_GET_SIZE(blob), &h)
    else:
        PyObject_GetBuffer(blob, &view, PyBUF_SIMPLE)
        try:
            read_header(<const char *>view.buf, view.len, &h)
        finally:
            PyBuffer_Release(&view)
    return (h.body_type, h.delivery_mode, h.priority, h.timestamp, h.expiration)


def decode_meta(blob):
    """(headers, properties) from the meta block."""
    cdef MessageHeader h
    cdef Py_buffer view
    PyObject_GetBuffer(blob, &view, PyBUF_SIMPLE)
    try:
        read_header(<const char *>view.buf, view.len, &h)
        return _decode_meta(<const char *>view.buf, &h)
    finally:
        PyBuffer_Release(&view)


def decode_message(blob):
    """(body_type, delivery_mode, priority, timestamp, expiration, headers, properties, body)"""
    cdef MessageHeader h
    cdef Py_buffer view
    cdef const char *p
    cdef Py_ssize_t start
    PyObject_GetBuffer(blob, &view, PyBUF_SIMPLE)
    try:
        p = <const char *>view.buf
        read_header(p, view.len, &h)
        headers, properties = _decode_meta(p, &h)
        start = MSG_HEADER_LEN + h.meta_len
        return (h.body_type, h.delivery_mode, h.priority, h.timestamp, h.expiration,
                headers, properties, PyBytes_FromStringAndSize(p + start, view.len - start))
    finally:
        PyBuffer_Release(&view)


def message_body(blob):
    """The raw body bytes after the meta block."""
    cdef MessageHeader h
    cdef Py_buffer view
    cdef const char *p
    cdef Py_ssize_t start
    PyObject_GetBuffer(blob, &view, PyBUF_SIMPLE)
    try:
        p = <const char *>view.buf
        read_header(p, view.len, &h)
        start = MSG_HEADER_LEN + h.meta_len
        return PyBytes_FromStringAndSize(p + start, view.len - start)
    finally:
        PyBuffer_Release(&view)
