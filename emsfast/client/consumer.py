"""Consumers: a local buffer of deliveries, credit back to the server as the app takes them."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, Any

from emsfast._core.framing import FrameEncoder
from emsfast.client.messages import Destination, Message, Queue, decode
from emsfast.client.session import silence
from emsfast.consts import DEFAULT_QUEUE_PREFETCH, DEFAULT_TOPIC_PREFETCH
from emsfast.errors import ConnectionClosedError, EmsfastError, InvalidError
from emsfast.selector import compile_selector

if TYPE_CHECKING:
    from emsfast.client.session import Session

__all__ = ["Consumer"]


class Consumer:
    """Receives from a queue or topic. ``await receive()`` or ``async for msg in consumer``."""

    def __init__(self, session: Session, cid: int, destination: Destination,
                 selector: str | None, durable: str | None, nolocal: bool, *,
                 shared: bool = False, subscription: str | None = None) -> None:
        # Compiled here only to reject a bad selector at once; the server filters.
        conn = session.connection
        compiled = (compile_selector(selector, conn.max_selector_length)
                    if selector is not None else None)
        self.session = session
        self.connection = conn
        self.id = cid
        self.destination = destination
        self.selector = selector if compiled is not None else None
        self.durable = durable
        self.shared = shared
        self.subscription = subscription if subscription is not None else durable
        is_queue = isinstance(destination, Queue)
        self._prefetch = DEFAULT_QUEUE_PREFETCH if is_queue else DEFAULT_TOPIC_PREFETCH
        self._credit_batch = _credit_batch(self._prefetch)
        self._buffer: deque[tuple[int, int, int, bytes]] = deque()
        self._credit = 0
        self._discarded = 0
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._lost: EmsfastError | None = None
        self._id_prefix = f"ID:{conn.server_name}."
        fields: dict[str, Any] = {
            "session": session.id,
            "consumer": cid,
            "dest_type": destination.kind,
            "dest": destination.name,
        }
        if self.selector is not None:
            fields["selector"] = self.selector
        if durable is not None:
            fields["durable"] = durable
        if nolocal:
            fields["nolocal"] = True
        if shared:
            fields["shared"] = True
        if subscription is not None:
            fields["subscription"] = subscription
        self.create_fields = fields
        # Ids handed out or buffered lately: after a failover the ones that come
        # back are flagged redelivered even if the old server had not marked them.
        self._recent: deque[int] = deque(maxlen=_RECENT)
        self._suspect: set[int] = set()
        conn.register_consumer(self)
        self.ready = conn.request("consumer.create", dict(fields))
        self.ready.add_done_callback(silence)
        self.ready.add_done_callback(self._created)

    def __repr__(self) -> str:
        return f"<emsfast.Consumer {self.id} {self.destination.kind}:{self.destination.name}>"

    @property
    def prefetch(self) -> int:
        return self._prefetch

    def _created(self, fut: asyncio.Future[dict[str, Any]]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            self.connection.forget(self)
            self.session.forget_consumer(self)
            return
        prefetch = fut.result().get("prefetch")
        if isinstance(prefetch, int) and prefetch > 0:
            self._prefetch = prefetch
            self._credit_batch = _credit_batch(prefetch)

    # -- receiving -------------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> Message | None:
        """The next message; ``None`` after ``timeout`` seconds (0: only if one is here).

        Also ``None`` when the consumer is closed while waiting. Raises
        ``ConnectionClosedError`` once the connection is gone.
        """
        if self._lost is not None:
            raise ConnectionClosedError(str(self._lost)) from self._lost
        if self._buffer:
            return self._take()
        await self.ready
        if self._closed:
            raise InvalidError(f"consumer {self.id} is closed")
        if self._buffer:        # deliveries that arrived with the creation reply
            return self._take()
        if timeout is not None and timeout <= 0:
            return None
        if self._waiter is not None:
            raise InvalidError(f"another receive() is already waiting on consumer {self.id}")
        waiter: asyncio.Future[None] = self.connection.proto.loop.create_future()
        self._waiter = waiter
        try:
            if timeout is None:
                await waiter
            else:
                try:
                    async with asyncio.timeout(timeout):
                        await waiter
                except TimeoutError:
                    pass
        finally:
            self._waiter = None
        if self._buffer:
            return self._take()
        if self._lost is not None:
            raise ConnectionClosedError(str(self._lost)) from self._lost
        return None

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Message:
        msg = await self.receive()
        if msg is None:
            raise StopAsyncIteration
        return msg

    def _take(self) -> Message:
        count, tag, mid, blob = self._buffer.popleft()
        self._recent.append(mid)
        self._credit += 1
        if self._credit >= self._credit_batch or not self._buffer:
            self.connection.proto.add_pending(self)
        msg = decode(blob, self._id_prefix + str(mid), count)
        if msg.destination is None:
            msg.destination = self.destination
        self.session.taken(msg, tag)
        return msg

    # -- called by the connection and session ----------------------------------------

    def deliver(self, count: int, tag: int, mid: int, blob: bytes) -> None:
        if self._suspect and count < 2 and mid in self._suspect:
            count = 2           # seen before the failover: a redelivery
        limbo = self.session.limbo
        if limbo is not None:
            limbo.append((self, (count, tag, mid, blob)))
            return
        self._buffer.append((count, tag, mid, blob))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def emit(self, encoder: FrameEncoder) -> None:
        if self._credit and not self._closed:
            encoder.credit(self.id, self._credit)
        self._credit = 0

    def discard_buffered(self) -> None:
        """Drop buffered deliveries the server is about to redeliver (recover)."""
        self._discarded += len(self._buffer)
        self._buffer.clear()

    def drop_stale(self) -> None:
        """A delivery the server returned on recover: its credit comes back later."""
        self._discarded += 1

    def release_discarded(self) -> None:
        """Give back the credit of discarded deliveries once the server has returned them.

        Sent after the recover reply, not before it: earlier credit would let the
        server send fresh messages that the recover would then return a second time.
        """
        if self._discarded:
            self._credit += self._discarded
            self._discarded = 0
            self.connection.proto.add_pending(self)

    def failover_begin(self) -> None:
        """The link broke: the new server redelivers what was unacked, with full credit."""
        self._suspect = set(self._recent)
        self._suspect.update(entry[2] for entry in self._buffer)
        self._buffer.clear()
        self._credit = 0
        self._discarded = 0

    def connection_lost(self, exc: EmsfastError) -> None:
        self._lost = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
            waiter.exception()  # the receive() that waits raises its own copy

    def closed_by_session(self) -> None:
        self._mark_closed()

    def _mark_closed(self) -> None:
        self._closed = True
        self._buffer.clear()
        self.connection.forget(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def close(self) -> None:
        """Stop receiving; deliveries not yet acknowledged go back to the server."""
        if self._closed:
            return
        self._mark_closed()
        self.session.forget_consumer(self)
        conn = self.connection
        if conn.is_closed:
            return
        try:
            await self.ready
        except EmsfastError:
            return  # never existed on the server
        # Messages the application took but has not acknowledged stay with the
        # session (JMS); everything else of this consumer goes back.
        await conn.request("consumer.close",
                           {"consumer": self.id, "keep": self.session.held_tags()})


_RECENT = 10_000


def _credit_batch(prefetch: int) -> int:
    # Half the window: the server never idles waiting for credit, and a busy
    # consumer sends one CREDIT per prefetch/2 messages instead of one each.
    return max(1, (prefetch + 1) // 2)
