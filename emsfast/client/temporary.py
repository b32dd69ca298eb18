"""Temporary queues and topics (EMS.md 5.9) and request/reply on top of them.

The client names a temporary destination ``$TMP$.<server>.<conn_id>.<seq>`` itself
and pipelines its creation, so using it never waits for a round trip.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import TYPE_CHECKING, Any

from emsfast.client.messages import Destination, Message, Queue, Topic
from emsfast.errors import InvalidError

if TYPE_CHECKING:
    from emsfast.client.connection import Connection
    from emsfast.client.session import Session

__all__ = ["Requestor", "TemporaryQueue", "TemporaryTopic"]

TEMP_PREFIX = "$TMP$."


class _Temporary:
    """What both temporary kinds add to their plain destination."""

    __slots__ = ()
    name: str
    kind: str
    connection: Connection
    ready: asyncio.Future[dict[str, Any]]

    def _setup(self, connection: Connection) -> None:
        object.__setattr__(self, "connection", connection)
        object.__setattr__(self, "ready", connection.request(
            "temp.create", {"dest_type": self.kind, "dest": self.name}))
        self.ready.add_done_callback(_silence)

    async def delete(self) -> None:
        """Delete it now (it also goes when its connection closes); fails while a
        consumer is open on it."""
        conn = self.connection
        conn.check_open()
        await self.ready
        await conn.request("temp.delete", {"dest_type": self.kind, "dest": self.name})


class TemporaryQueue(_Temporary, Queue):
    """A queue only its connection consumes; equal to ``Queue(name)``."""

    __slots__ = ("connection", "ready")

    def __init__(self, name: str, connection: Connection) -> None:
        Queue.__init__(self, name)
        self._setup(connection)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Queue) and other.name == self.name

    def __hash__(self) -> int:
        return Queue.__hash__(self)     # equal objects, equal hashes


class TemporaryTopic(_Temporary, Topic):
    """A topic only its connection subscribes to; equal to ``Topic(name)``."""

    __slots__ = ("connection", "ready")

    def __init__(self, name: str, connection: Connection) -> None:
        Topic.__init__(self, name)
        self._setup(connection)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Topic) and other.name == self.name

    def __hash__(self) -> int:
        return Topic.__hash__(self)


def _silence(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def is_temporary(dest: Destination) -> bool:
    return dest.name.startswith(TEMP_PREFIX)


class Requestor:
    """Request/reply over a private temporary queue (JMS ``QueueRequestor``).

    ``request()`` sets ``JMSReplyTo`` to the temporary queue and a fresh
    ``JMSCorrelationID``, sends, and returns the reply carrying that correlation
    id; a late reply to an earlier request that timed out is dropped. Requests
    on one requestor are serialised; use several requestors for concurrency.
    """

    def __init__(self, session: Session, destination: Destination) -> None:
        if not isinstance(destination, Queue | Topic):
            raise InvalidError(f"request destination must be Queue or Topic, got {destination!r}")
        self.session = session
        self.destination = destination
        self.reply_to = session.temporary_queue()
        self._producer = session.producer(destination)
        self._consumer = session.consumer(self.reply_to)
        self._lock = asyncio.Lock()
        self._prefix = f"REQ:{uuid.uuid4().hex}:"
        self._seq = itertools.count(1)

    async def request(self, msg: Message, timeout: float | None = None, *,
                      delivery_mode: str = "non_persistent", priority: int = 4,
                      ttl: int = 0) -> Message | None:
        """Send ``msg`` and wait for its reply; ``None`` after ``timeout`` seconds."""
        async with self._lock:
            cid = f"{self._prefix}{next(self._seq)}"
            msg.correlation_id = cid
            msg.reply_to = self.reply_to
            await self._producer.send(msg, delivery_mode=delivery_mode, priority=priority,
                                      ttl=ttl)
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                reply = await self._consumer.receive(left)
                if reply is None:
                    return None
                if reply.correlation_id == cid:
                    return reply

    async def close(self) -> None:
        await self._consumer.close()
        await self._producer.close()
        await self.reply_to.delete()

    async def __aenter__(self) -> Requestor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
