"""The server's view of a message: the producer's blob plus routing fields.

The blob is never re-encoded; only the fixed header is read on publish, and the
meta block is decoded lazily when a selector needs headers or properties. The
class lives in the native core because one is built per published message; a
recovered message (``stored_message``) keeps only its index fields in memory and
reads its body back from the store when it is delivered.
"""

from __future__ import annotations

from typing import Protocol

from emsfast._core.dispatch import ServerMessage, stored_message

__all__ = ["BlobSource", "ServerMessage", "stored_message"]


class BlobSource(Protocol):
    """Where a recovered message's body is read back from (the store)."""

    def load_blob(self, holder: str, message_id: int) -> bytes: ...
