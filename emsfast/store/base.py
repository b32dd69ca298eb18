"""The ``Store`` protocol every persistent-state backend implements.

Writes are ordered: a removal submitted after a put of the same key is applied
after it. Each write call returns the future of the batch it joined; the batch
future resolves once the batch is durable (after the fsync for ``mode=sync``
stores), so many writes share one commit and one callback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol


class StoredMessage(NamedTuple):
    """A persistent message as recovered: owner key, id, and the blob or its index.

    A store that keeps bodies out of memory gives ``blob=None`` plus the size and
    the fixed-header fields; the body is read with ``Store.load_blob`` when needed.
    (A tuple, not a dataclass: recovery makes one per pending message.)
    """

    holder: str            # "q:<queue>" or "d:<durable full name>"
    message_id: int
    blob: bytes | None
    delivery_count: int = 0
    size: int = 0
    delivery_mode: int = 0
    priority: int = 0
    timestamp: int = 0
    expiration: int = 0


@dataclass(frozen=True, slots=True)
class DurableRecord:
    """A durable subscription (EMS.md 5.12): ``clientID:name`` or a shared ``name``."""

    key: str               # full name, also the holder suffix ("d:" + key)
    topic: str
    selector: str | None = None
    nolocal: bool = False
    client_id: str | None = None
    name: str = ""


@dataclass(slots=True)
class RecoveredState:
    # Iterated once; in message-id order within each holder (and store).
    messages: Iterable[StoredMessage] = field(default_factory=list)
    durables: list[DurableRecord] = field(default_factory=list)
    destinations: list[tuple[str, str]] = field(default_factory=list)  # (kind, name)
    max_message_id: int = 0


class Store(Protocol):
    """Persistent messages, durables and destination metadata."""

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open for writing; takes the store lock where there is one."""

    def recover(self) -> RecoveredState:
        """Everything needed to rebuild the server's state after a restart."""

    def load_blob(self, holder: str, message_id: int) -> bytes:
        """The body of a stored message (recovered with ``blob=None``)."""

    def put_message(self, store_name: str, holder: str, message_id: int,
                    blob: bytes) -> asyncio.Future[None]: ...

    def remove_message(self, holder: str, message_id: int) -> asyncio.Future[None]: ...

    def set_delivery_count(self, holder: str, message_id: int,
                           count: int) -> asyncio.Future[None]: ...

    def mark_delivered(self, holder: str, message_id: int) -> None:
        """Best effort: record that a stored message went to a consumer, so a restart
        redelivers it flagged JMSRedelivered. May be written late (or never, when the
        message is acknowledged first); ``flush`` writes all pending marks."""

    def remove_holder(self, holder: str) -> asyncio.Future[None]:
        """Drop every message of a queue or durable (purge, unsubscribe)."""

    def put_durable(self, record: DurableRecord) -> asyncio.Future[None]: ...

    def remove_durable(self, key: str) -> asyncio.Future[None]: ...

    def put_destination(self, kind: str, name: str) -> asyncio.Future[None]: ...

    def remove_destination(self, kind: str, name: str) -> asyncio.Future[None]: ...

    def flush(self) -> asyncio.Future[None]:
        """A future resolved when everything submitted so far is durable."""

    def close(self) -> None:
        """Finish pending writes and release the store lock."""
