"""The broker's per-message objects as C types (docs/protocol.md §5).

A message and a delivery are created once per publish and per hand-out; as
cdef classes they cost a fraction of a Python object with ``__slots__`` and are
built straight from the PUBLISH body, without an intermediate tuple.
"""

cimport cython
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport int64_t, uint64_t

from emsfast._core.hton cimport ems_load_u32, ems_load_u64
from emsfast._core.message cimport MessageHeader, read_header

from emsfast._core.message import decode_meta
from emsfast.errors import FrameError

include "consts.pxi"

cdef enum:
    PUBLISH_FIXED = 12          # u32 producer, u64 seq

cdef dict _MODE_NAMES = {
    NON_PERSISTENT: "NON_PERSISTENT", PERSISTENT: "PERSISTENT", RELIABLE: "RELIABLE",
}


@cython.final
@cython.freelist(256)
cdef class ServerMessage:
    """A message as the broker holds it: the producer's blob plus routing fields.

    A message recovered from the store keeps only its index fields in memory;
    ``blob`` reads the body back from the store each time it is needed.
    """

    def __init__(self, uint64_t mid, bytes blob, int delivery_mode, int priority,
                 int64_t timestamp, int64_t expiration, uint64_t origin):
        self.id = mid
        self._blob = blob
        self.delivery_mode = delivery_mode
        self.persistent = delivery_mode == PERSISTENT
        self.priority = priority
        self.timestamp = timestamp
        self.expiration = expiration
        self.size = len(blob)
        self.origin = origin        # connection id of the producer, for noLocal
        self._meta = None

    @property
    def blob(self):
        if self._blob is not None:
            return self._blob
        return self._source.load_blob(self._holder, self.id)

    @property
    def stored(self):
        """True for a recovered message whose body lives only in the store."""
        return self._blob is None

    def loaded(self):
        """This message with its body in memory (for a move to another holder)."""
        if self._blob is not None:
            return self
        return ServerMessage(self.id, self.blob, self.delivery_mode, self.priority,
                             self.timestamp, self.expiration, self.origin)

    def field_getter(self, str server_name, int delivered=0):
        """A ``get(name)`` for selectors: JMS headers by JMS name, else properties.

        ``delivered``: deliveries before this one (JMSRedelivered, JMSXDeliveryCount).
        The meta block is decoded on first use and kept: a message matched by
        several selectors decodes it once.
        """
        meta = self._meta
        if meta is None:
            meta = self._meta = decode_meta(self.blob)
        headers = meta[0] or {}
        props = meta[1] or {}
        msg = self

        def get(str name):
            if name.startswith("JMS"):
                if name == "JMSPriority":
                    return msg.priority
                if name == "JMSDeliveryMode":
                    return _MODE_NAMES.get(msg.delivery_mode)
                if name == "JMSTimestamp":
                    return msg.timestamp
                if name == "JMSExpiration":
                    return msg.expiration
                if name == "JMSMessageID":
                    return f"ID:{server_name}.{msg.id}"
                if name == "JMSCorrelationID":
                    return headers.get("cid")
                if name == "JMSType":
                    return headers.get("type")
                if name == "JMSRedelivered":
                    return delivered > 0
                if name == "JMSXDeliveryCount":
                    return delivered + 1
            return props.get(name)

        return get


@cython.final
@cython.freelist(256)
cdef class Delivery:
    """A message handed to a consumer and not yet acknowledged."""

    def __init__(self, consumer, holder, ServerMessage msg, int count):
        self.consumer = consumer
        self.holder = holder
        self.msg = msg
        self.count = count


def parse_publish_message(body, uint64_t mid, uint64_t origin):
    """(producer, seq, ServerMessage) from a PUBLISH body; FrameError if malformed."""
    cdef Py_buffer view
    cdef const char *p
    cdef MessageHeader h
    cdef ServerMessage msg
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        p = <const char *>view.buf
        if view.len < PUBLISH_FIXED:
            raise FrameError(f"PUBLISH frame body of {view.len} bytes is shorter than its "
                             f"{PUBLISH_FIXED}-byte header")
        read_header(p + PUBLISH_FIXED, view.len - PUBLISH_FIXED, &h)
        msg = ServerMessage.__new__(ServerMessage)
        msg.id = mid
        msg._blob = PyBytes_FromStringAndSize(p + PUBLISH_FIXED, view.len - PUBLISH_FIXED)
        msg.delivery_mode = h.delivery_mode
        msg.persistent = h.delivery_mode == PERSISTENT
        msg.priority = h.priority
        msg.timestamp = h.timestamp
        msg.expiration = h.expiration
        msg.size = view.len - PUBLISH_FIXED
        msg.origin = origin
        return ems_load_u32(p), ems_load_u64(p + 4), msg
    finally:
        PyBuffer_Release(&view)


def stored_message(source, str holder, uint64_t mid, Py_ssize_t size, int delivery_mode,
                   int priority, int64_t timestamp, int64_t expiration):
    """A recovered persistent message: index fields only, the body stays in ``source``."""
    cdef ServerMessage msg = ServerMessage.__new__(ServerMessage)
    msg.id = mid
    msg._source = source
    msg._holder = holder
    msg.delivery_mode = delivery_mode
    msg.persistent = delivery_mode == PERSISTENT
    msg.priority = priority
    msg.timestamp = timestamp
    msg.expiration = expiration
    msg.size = size
    msg.origin = 0
    return msg
