"""The server's view of a message: the producer's blob plus routing fields.

The blob is never re-encoded; only the fixed header is read on publish, and the
meta block is decoded lazily when a selector needs headers or properties.
"""

from __future__ import annotations

from typing import Any

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

    def field_getter(self, server_name: str, delivered: int = 0) -> Any:
        """A ``get(name)`` for selectors: JMS headers by JMS name, else properties.

        ``delivered``: deliveries before this one (JMSRedelivered, JMSXDeliveryCount).
        """
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
                    return delivered > 0
                if name == "JMSXDeliveryCount":
                    return delivered + 1
            return props.get(name)

        return get
