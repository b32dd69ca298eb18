"""Producers: sequenced PUBLISH frames, confirms, and a window of async sends."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from emsfast.client.messages import Destination, Message
from emsfast.client.session import silence
from emsfast.consts import (
    DEFAULT_PRIORITY,
    DELIVERY_MODES,
    PERSISTENT,
    PUBLISH_CONFIRM,
)
from emsfast.errors import ConnectionClosedError, EmsfastError, InvalidError, LimitError

if TYPE_CHECKING:
    from emsfast.client.session import Session
    from emsfast.link.protocol import ClientProtocol

__all__ = ["Producer", "SendFuture"]


class SendFuture(asyncio.Future[Message]):
    """The future of one ``send_async``; resolves to the sent message (with its id).

    It remembers whether the application looked at it, so ``flush()`` and the next
    send raise a failure only if nobody has seen it yet.
    """

    seen = False
    record = False      # raise from flush()/next send if unseen (send_async, not send)
    msg: Message
    blob = b""          # kept while unconfirmed: resent as is after a failover

    def result(self) -> Message:
        self.seen = True
        return super().result()

    def exception(self) -> BaseException | None:
        self.seen = True
        return super().exception()

    def __await__(self) -> Generator[Any, None, Message]:
        self.seen = True
        return super().__await__()

    __iter__ = __await__


class Producer:
    """Sends to one destination. Not safe to share between concurrently running tasks."""

    def __init__(self, session: Session, pid: int, destination: Destination,
                 window: int) -> None:
        conn = session.connection
        self.session = session
        self.connection = conn
        self.id = pid
        self.destination = destination
        self.window = window
        self._seq = 0
        self._pending: dict[int, SendFuture] = {}
        # Failures not yet raised, in arrival order; the future is None for sends
        # that asked for no confirmation (non_persistent).
        self._failures: deque[tuple[EmsfastError, SendFuture | None]] = deque()
        self._space = asyncio.Event()
        self._space.set()
        self._closed = False
        self._lost: EmsfastError | None = None
        conn.register_producer(self)
        self.create_fields: dict[str, Any] = {
            "session": session.id,
            "producer": pid,
            "dest_type": destination.kind,
            "dest": destination.name,
        }
        self.ready = conn.request("producer.create", dict(self.create_fields))
        self.ready.add_done_callback(silence)

    def __repr__(self) -> str:
        return f"<emsfast.Producer {self.id} {self.destination.kind}:{self.destination.name}>"

    @property
    def outstanding(self) -> int:
        """Persistent sends not yet confirmed."""
        return len(self._pending)

    # -- sending ---------------------------------------------------------------------

    async def send(self, msg: Message, delivery_mode: str = "persistent",
                   priority: int = DEFAULT_PRIORITY, ttl: int = 0) -> None:
        """Send ``msg``; a persistent send returns once the server has stored it."""
        fut = await self._publish(msg, delivery_mode, priority, ttl, record=False)
        if fut is not None:
            await fut

    async def send_async(self, msg: Message, delivery_mode: str = "persistent",
                         priority: int = DEFAULT_PRIORITY, ttl: int = 0) -> SendFuture:
        """Send without waiting for the confirm; waits only while ``window`` are unconfirmed.

        The returned future resolves to ``msg`` (persistent: once confirmed). A
        failure nobody awaited is raised by the next send or ``flush()``.
        """
        fut = await self._publish(msg, delivery_mode, priority, ttl, record=True)
        if fut is None:
            fut = SendFuture(loop=self.connection.proto.loop)
            fut.set_result(msg)
        return fut

    async def flush(self) -> None:
        """Wait for every outstanding confirm, then a round trip so that failures of
        unconfirmed sends have arrived; raise the first failure not yet seen."""
        await self._wait_ready()
        while self._pending:
            await asyncio.wait(list(self._pending.values()))
        if self._lost is None:
            await self.connection.ping()
        self._raise_failure()
        if self._lost is not None:
            raise ConnectionClosedError(str(self._lost)) from self._lost

    async def close(self) -> None:
        """Wait for outstanding confirms, close on the server, raise an unseen failure."""
        if self._closed:
            return
        try:
            await self._wait_ready()
            while self._pending:
                await asyncio.wait(list(self._pending.values()))
        except EmsfastError:
            self._mark_closed()
            return
        self._mark_closed()
        if not self.connection.is_closed:
            await self.connection.request("producer.close", {"producer": self.id})
        self._raise_failure()

    async def _wait_ready(self) -> None:
        if self._closed:
            raise InvalidError(f"producer {self.id} is closed")
        if not self.ready.done():
            await self.session.ready
            await self.ready
        elif self.ready.exception() is not None:
            await self.session.ready  # its error explains the producer's
            await self.ready

    async def _publish(self, msg: Message, delivery_mode: str, priority: int, ttl: int,
                       record: bool) -> SendFuture | None:
        await self._wait_ready()
        self._raise_failure()
        if self._lost is not None:
            raise ConnectionClosedError(str(self._lost)) from self._lost
        conn = self.connection
        conn.check_open()
        try:
            mode = DELIVERY_MODES[delivery_mode]
        except KeyError:
            names = ", ".join(DELIVERY_MODES)
            raise InvalidError(f"delivery_mode {delivery_mode!r}: expected {names}") from None
        if not isinstance(priority, int) or not 0 <= priority <= 9:
            raise InvalidError(f"priority must be 0-9, got {priority!r}")
        if not isinstance(ttl, int) or ttl < 0:
            raise InvalidError(f"ttl must be milliseconds >= 0, got {ttl!r}")
        if not isinstance(msg, Message):
            raise InvalidError(f"send() takes a Message, got {type(msg).__name__}")
        confirm = mode == PERSISTENT
        if confirm:
            while len(self._pending) >= self.window:
                self._space.clear()
                await self._space.wait()
                if self._lost is not None:
                    raise ConnectionClosedError(str(self._lost)) from self._lost
        proto = conn.proto
        if not proto.writable:
            await proto.wait_writable()
        now = time.time_ns() // 1_000_000
        expiration = now + ttl if ttl else 0
        blob = msg.encode(mode, priority, now, expiration, self.destination)
        if len(blob) > conn.max_msg_size:
            raise LimitError(
                f"message of {len(blob)} bytes exceeds the server's max_msg_size "
                f"of {conn.max_msg_size}"
            )
        self._seq += 1
        seq = self._seq
        msg.destination = self.destination
        msg.delivery_mode = delivery_mode
        msg.priority = priority
        msg.timestamp = now
        msg.expiration = expiration
        msg.message_id = None
        proto.encoder.publish(self.id, seq, PUBLISH_CONFIRM if confirm else 0, blob)
        proto.schedule_flush()
        if not confirm:
            return None
        fut = SendFuture(loop=proto.loop)
        fut.msg = msg
        fut.blob = blob
        fut.record = record
        self._pending[seq] = fut
        return fut

    def _keep_failure(self, err: EmsfastError, fut: SendFuture) -> None:
        # The producer now owns reporting this failure (flush/next send), so the
        # future must not also log "exception was never retrieved".
        asyncio.Future.exception(fut)
        self._failures.append((err, fut))

    def _raise_failure(self) -> None:
        """Raise the first failure nobody has seen; it stands for the ones after it
        (one full queue fails many sends), which are cleared with it."""
        first: EmsfastError | None = None
        for err, fut in self._failures:
            if fut is None or not fut.seen:
                first = err
                break
        if first is None:
            self._failures.clear()
            return
        for _, fut in self._failures:
            if fut is not None:
                fut.seen = True
        self._failures.clear()
        raise first

    # -- called by the connection ----------------------------------------------------

    def confirmed(self, pairs: list[tuple[int, int]]) -> None:
        pending = self._pending
        prefix = f"ID:{self.connection.server_name}."
        for seq, mid in pairs:
            fut = pending.pop(seq, None)
            if fut is not None and not fut.done():
                msg = fut.msg
                msg.message_id = prefix + str(mid)
                fut.set_result(msg)
        if len(pending) < self.window:
            self._space.set()

    def failed(self, seq: int, err: EmsfastError) -> None:
        fut = self._pending.pop(seq, None)
        if fut is None:
            self._failures.append((err, None))
        else:
            if not fut.done():
                fut.set_exception(err)
            if fut.record:
                self._keep_failure(err, fut)
        if len(self._pending) < self.window:
            self._space.set()

    def resend(self, proto: ClientProtocol) -> None:
        """After a failover: every unconfirmed persistent send again, same sequence
        numbers, in order; the server drops the ones it had already stored."""
        for seq in sorted(self._pending):
            proto.encoder.publish(self.id, seq, PUBLISH_CONFIRM, self._pending[seq].blob)

    def connection_lost(self, exc: EmsfastError) -> None:
        self._lost = exc
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)
                if fut.record:
                    self._keep_failure(exc, fut)
        self._space.set()

    def closed_by_session(self) -> None:
        self._mark_closed()

    def _mark_closed(self) -> None:
        self._closed = True
        self.connection.forget(self)
        self.session.forget_producer(self)
