"""The server's view of a message: the producer's blob plus routing fields.

The blob is never re-encoded; only the fixed header is read on publish, and the
meta block is decoded lazily when a selector needs headers or properties.
"""

from __future__ import annotations

from typing import Any, Protocol

from emsfast._core.message import decode_meta
from emsfast.consts import NON_PERSISTENT, PERSISTENT

_MODE_NAMES = {NON_PERSISTENT: "NON_PERSISTENT", PERSISTENT: "PERSISTENT", 22: "RELIABLE"}


class ServerMessage:
    __slots__ = (
        "id", "blob", "priority", "expiration", "timestamp", "delivery_mode",
        "persistent", "size", "origin", "_meta",
    )

    def __init__(self, mid: int, blob: bytes, delivery_mode: int, priority: int,
                 timestamp: int, expiration: int, origin: int) -> None:
        self.id = mid
        self.blob = blob
        self.delivery_mode = delivery_mode
        self.persistent = delivery_mode == PERSISTENT
        self.priority = priority
        self.timestamp = timestamp
        self.expiration = expiration
        self.size = len(blob)
        self.origin = origin          # connection id of the producer, for noLocal
        self._meta: tuple[dict[str, Any] | None, dict[str, Any] | None] | None = None

    def field_getter(self, server_name: str, redelivered: bool = False) -> Any:
        """A ``get(name)`` for selectors: JMS headers by JMS name, else properties."""
        meta = self._meta
        if meta is None:
            meta = self._meta = decode_meta(self.blob)
        headers = meta[0] or {}
        props = meta[1] or {}

        def get(name: str) -> Any:
            if name.startswith("JMS"):
                if name == "JMSPriority":
                    return self.priority
                if name == "JMSDeliveryMode":
                    return _MODE_NAMES.get(self.delivery_mode)
                if name == "JMSTimestamp":
                    return self.timestamp
                if name == "JMSExpiration":
                    return self.expiration
                if name == "JMSMessageID":
                    return f"ID:{server_name}.{self.id}"
                if name == "JMSCorrelationID":
                    return headers.get("cid")
                if name == "JMSType":
                    return headers.get("type")
                if name == "JMSRedelivered":
                    return redelivered
            return props.get(name)

        return get


class BlobSource(Protocol):
    def load_blob(self, holder: str, message_id: int) -> bytes: ...


class StoredServerMessage(ServerMessage):
    """A recovered persistent message: only the index is in memory; each use of
    ``blob`` (delivery, a selector) reads the body back from the store."""

    __slots__ = ("_source", "_holder")

    def __init__(self, source: BlobSource, holder: str, mid: int, size: int,
                 delivery_mode: int, priority: int, timestamp: int, expiration: int) -> None:
        super().__init__(mid, b"", delivery_mode, priority, timestamp, expiration, 0)
        self.size = size
        self._source = source
        self._holder = holder

    @property
    def blob(self) -> bytes:
        return self._source.load_blob(self._holder, self.id)

    @blob.setter
    def blob(self, value: bytes) -> None:
        pass        # the body lives in the store

    def loaded(self) -> ServerMessage:
        """A plain copy carrying its body, for a move to another holder."""
        msg = ServerMessage(self.id, self.blob, self.delivery_mode, self.priority,
                            self.timestamp, self.expiration, self.origin)
        msg._meta = self._meta
        return msg
