"""Store record codec: a version byte, a kind and a CRC32C on every record.

Message keys are ``holder UTF-8 + NUL + big-endian message id`` so an LMDB
cursor walks each holder's messages in id order (recovery order).
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

from emsfast._core.crc cimport ems_crc32c
from emsfast._core.hton cimport ems_load_u32, ems_store_be64, ems_store_u32
from emsfast._core.message cimport MessageHeader, read_header

from emsfast.errors import StoreError

FORMAT_VERSION = STORE_FORMAT_VERSION
MESSAGE = REC_MESSAGE
COUNT = REC_COUNT
DURABLE = REC_DURABLE
DESTINATION = REC_DESTINATION
EPOCH = REC_EPOCH
FORMAT = REC_FORMAT


cdef uint32_t record_crc(const char *key, Py_ssize_t klen, const char *rec,
                         Py_ssize_t rlen) noexcept nogil:
    cdef uint32_t crc = ems_crc32c(0, key, <size_t>klen)
    crc = ems_crc32c(crc, rec, 2)
    return ems_crc32c(crc, rec + STORE_RECORD_HEADER, <size_t>(rlen - STORE_RECORD_HEADER))


def encode_record(int kind, bytes key not None, payload) -> bytes:
    """The stored value for ``payload`` (any buffer) under ``key``."""
    cdef Py_buffer view
    cdef bytes out
    cdef char *p
    if not 0 < kind < 256:
        raise ValueError(f"record kind {kind} out of range")
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    try:
        out = PyBytes_FromStringAndSize(NULL, STORE_RECORD_HEADER + view.len)
        p = PyBytes_AS_STRING(out)
        p[0] = <char>STORE_FORMAT_VERSION
        p[1] = <char>kind
        if view.len:
            memcpy(p + STORE_RECORD_HEADER, view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)
    ems_store_u32(p + 2, record_crc(PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), p,
                                    PyBytes_GET_SIZE(out)))
    return out


def decode_record(str store, bytes key not None, value, int want_kind=0):
    """Check ``value`` (read under ``key``) and return ``(kind, payload bytes)``.

    Raises StoreError naming the store, the key and what is wrong.
    """
    cdef Py_buffer view
    cdef const unsigned char *u
    cdef uint32_t stored, actual
    cdef int kind
    PyObject_GetBuffer(value, &view, PyBUF_SIMPLE)
    try:
        u = <const unsigned char *>view.buf
        if view.len < STORE_RECORD_HEADER:
            raise StoreError(_where(store, key, f"record of {view.len} bytes is shorter "
                                    f"than its {STORE_RECORD_HEADER}-byte header"))
        if u[0] > STORE_FORMAT_VERSION or u[0] == 0:
            raise StoreError(_where(store, key, f"record format version {u[0]} is not "
                                    f"supported (this server writes {STORE_FORMAT_VERSION})"))
        kind = u[1]
        stored = ems_load_u32(u + 2)
        actual = record_crc(PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key),
                            <const char *>u, view.len)
        if stored != actual:
            raise StoreError(_where(store, key, f"CRC mismatch (stored 0x{stored:08x}, "
                                    f"computed 0x{actual:08x})"))
        if want_kind and kind != want_kind:
            raise StoreError(_where(store, key, f"record kind {kind}, expected {want_kind}"))
        payload = PyBytes_FromStringAndSize(<const char *>u + STORE_RECORD_HEADER,
                                            view.len - STORE_RECORD_HEADER)
    finally:
        PyBuffer_Release(&view)
    return kind, payload


cdef str _where(str store, bytes key, str reason):
    return f"store '{store}': corrupt record at key {_show_key(key)}: {reason}"


def _show_key(bytes key) -> str:
    cdef Py_ssize_t i = key.find(b"\x00")
    if i >= 0 and len(key) == i + 9:
        return f"{key[:i].decode('utf-8', 'replace')}/{int.from_bytes(key[i + 1:], 'big')}"
    return repr(key)


def show_key(bytes key not None) -> str:
    """A readable form of a store key for log lines: ``q:orders/42``."""
    return _show_key(key)


def message_key(str holder, uint64_t message_id) -> bytes:
    cdef bytes h = holder.encode("utf-8")
    cdef Py_ssize_t n = PyBytes_GET_SIZE(h)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n + 9)
    cdef char *p = PyBytes_AS_STRING(out)
    memcpy(p, PyBytes_AS_STRING(h), <size_t>n)
    p[n] = 0
    ems_store_be64(p + n + 1, message_id)
    return out


def message_record(str holder, uint64_t message_id, bytes blob not None):
    """``(key, value)`` of a message record: ``message_key`` + ``encode_record`` in one call."""
    cdef bytes key = message_key(holder, message_id)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(blob)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, STORE_RECORD_HEADER + n)
    cdef char *p = PyBytes_AS_STRING(out)
    p[0] = <char>STORE_FORMAT_VERSION
    p[1] = <char>REC_MESSAGE
    memcpy(p + STORE_RECORD_HEADER, PyBytes_AS_STRING(blob), <size_t>n)
    ems_store_u32(p + 2, record_crc(PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), p,
                                    STORE_RECORD_HEADER + n))
    return key, out


def holder_prefix(str holder) -> bytes:
    """Every message key of ``holder`` starts with this."""
    return holder.encode("utf-8") + b"\x00"


def split_message_key(bytes key not None):
    """``(holder, message_id)`` of a message key."""
    cdef const char *p = PyBytes_AS_STRING(key)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(key)
    cdef const unsigned char *u
    cdef uint64_t mid = 0
    cdef int i
    if n < 10 or p[n - 9] != 0:
        raise StoreError(f"malformed message key {key!r}")
    u = <const unsigned char *>(p + n - 8)
    for i in range(8):
        mid = (mid << 8) | u[i]
    return p[:n - 9].decode("utf-8"), mid


def scan_messages(str store, pairs, Py_ssize_t limit, make, dict counts):
    """Recovery index: up to ``limit`` message records from the iterator ``pairs``
    → ``[make(holder, id, None, count, size, mode, priority, timestamp, expiration)]``.

    Every CRC is checked and every message header validated, but no body is kept:
    delivery loads it again (``LmdbStore.load_blob``). ``counts`` maps
    ``(holder, id)`` to a persisted delivery count.
    """
    cdef list out = []
    cdef object holder = None
    cdef bytes last_prefix = None
    cdef bytes key, value
    cdef const unsigned char *k
    cdef const char *v
    cdef Py_ssize_t kn, vn, pn = -1
    cdef uint64_t mid
    cdef int i
    cdef MessageHeader h
    cdef object count
    for key, value in pairs:
        k = <const unsigned char *>PyBytes_AS_STRING(key)
        kn = PyBytes_GET_SIZE(key)
        v = PyBytes_AS_STRING(value)
        vn = PyBytes_GET_SIZE(value)
        if kn < 10 or k[kn - 9] != 0:
            raise StoreError(_where(store, key, "malformed message key"))
        if vn < STORE_RECORD_HEADER or <unsigned char>v[0] != STORE_FORMAT_VERSION \
                or <unsigned char>v[1] != REC_MESSAGE \
                or ems_load_u32(v + 2) != record_crc(<const char *>k, kn, v, vn):
            decode_record(store, key, value, REC_MESSAGE)    # raises with the reason
        try:
            read_header(v + STORE_RECORD_HEADER, vn - STORE_RECORD_HEADER, &h)
        except ValueError as exc:
            raise StoreError(_where(store, key, f"bad message: {exc}")) from None
        if kn - 9 != pn or memcmp(k, PyBytes_AS_STRING(last_prefix), <size_t>pn) != 0:
            last_prefix = key[:kn - 9]
            pn = kn - 9
            holder = last_prefix.decode("utf-8")
        mid = 0
        for i in range(8):
            mid = (mid << 8) | k[kn - 8 + i]
        count = counts.get((holder, mid), 0) if counts else 0
        out.append(make(holder, mid, None, count, vn - STORE_RECORD_HEADER, h.delivery_mode,
                        h.priority, h.timestamp, h.expiration))
        if len(out) >= limit:
            break
    return out
