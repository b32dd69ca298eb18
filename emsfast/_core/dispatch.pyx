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


# Not final: the store subclasses it for recovered messages whose body stays on
# disk (server/messages.py StoredServerMessage overrides ``blob``).
@cython.freelist(256)
cdef class ServerMessage:
    """A message as the broker holds it: the producer's blob plus routing fields."""

    def __init__(self, uint64_t mid, bytes blob, int delivery_mode, int priority,
                 int64_t timestamp, int64_t expiration, uint64_t origin):
        self.id = mid
        self.blob = blob
        self.delivery_mode = delivery_mode
        self.persistent = delivery_mode == PERSISTENT
        self.priority = priority
        self.timestamp = timestamp
        self.expiration = expiration
        self.size = len(blob)
        self.origin = origin        # connection id of the producer, for noLocal
        self._meta = None

    def field_getter(self, str server_name, int delivered=0):
        """A ``get(name)`` for selectors: JMS headers by JMS name, else properties.

        ``delivered``: deliveries before this one (JMSRedelivered, JMSXDeliveryCount).
        The meta block is decoded on first use and kept: a message matched by
        several selectors decodes it once.
        """
        meta = self._meta
        if meta is None:
            # A Python-level lookup, so a subclass's ``blob`` property is honoured.
            meta = self._meta = decode_meta(getattr(self, "blob"))
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
        msg.blob = PyBytes_FromStringAndSize(p + PUBLISH_FIXED, view.len - PUBLISH_FIXED)
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
