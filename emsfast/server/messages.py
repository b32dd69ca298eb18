"""The server's view of a message: the producer's blob plus routing fields.

The blob is never re-encoded; only the fixed header is read on publish, and the
meta block is decoded lazily when a selector needs headers or properties. The
class lives in the native core because one is built per published message.
"""

from __future__ import annotations

from typing import Protocol

from emsfast._core.dispatch import ServerMessage

__all__ = ["BlobSource", "ServerMessage", "StoredServerMessage"]


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
        return ServerMessage(self.id, self.blob, self.delivery_mode, self.priority,
                             self.timestamp, self.expiration, self.origin)
