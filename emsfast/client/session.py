"""Sessions: ack modes, transactions, and the factory for producers and consumers."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from emsfast._core.framing import FrameEncoder
from emsfast.client.failover import rolled_back
from emsfast.client.messages import Destination, Message, Queue, Topic
from emsfast.consts import (
    ACK_AUTO,
    ACK_CLIENT,
    ACK_DUPS_OK,
    ACK_EXPLICIT,
    ACK_EXPLICIT_DUPS_OK,
    ACK_MODES,
    ACK_TRANSACTED,
)
from emsfast.errors import InvalidError

if TYPE_CHECKING:
    from emsfast.client.browser import QueueBrowser
    from emsfast.client.connection import Connection
    from emsfast.client.consumer import Consumer
    from emsfast.client.producer import Producer
    from emsfast.client.temporary import Requestor, TemporaryQueue, TemporaryTopic

__all__ = ["Session"]

# Modes whose acks the client sends by itself as the application takes messages.
# Transacted sessions ack the same way; the server holds those acks until commit.
_AUTO_ACKED = frozenset({ACK_AUTO, ACK_DUPS_OK, ACK_TRANSACTED})
_EXPLICIT = frozenset({ACK_EXPLICIT, ACK_EXPLICIT_DUPS_OK})
# Replies go to few distinct reply queues at a time; bound the producers kept for them.
_REPLY_PRODUCERS = 16


def silence(fut: asyncio.Future[Any]) -> None:
    """Done callback for creation replies: their error is raised at first use instead."""
    if not fut.cancelled():
        fut.exception()


class Session:
    """A JMS session. Not safe to share between tasks that run concurrently."""

    def __init__(self, conn: Connection, sid: int, ack_mode: str, transacted: bool) -> None:
        if transacted:
            mode = ACK_TRANSACTED
        else:
            try:
                mode = ACK_MODES[ack_mode]
            except KeyError:
                names = ", ".join(ACK_MODES)
                raise InvalidError(f"ack_mode {ack_mode!r}: expected one of {names}") from None
        self.connection = conn
        self.id = sid
        self.ack_mode = "transacted" if transacted else ack_mode
        self.transacted = transacted
        self._mode = mode
        self._acks: list[int] = []          # tags to ack at the next write
        # CLIENT and EXPLICIT modes: taken by the application, not yet acknowledged.
        # They stay with the session when their consumer closes (JMS).
        self._held: dict[int, None] = {}
        # While a recover is in flight: deliveries that may predate it (see recover).
        self.limbo: list[tuple[Consumer, tuple[int, int, int, bytes]]] | None = None
        self._consumers: dict[int, Consumer] = {}
        self._producers: dict[int, Producer] = {}
        self._reply_producers: dict[Destination, Producer] = {}
        self._closed = False
        # Failover (client/failover.py): tags of an older link must never be acked
        # on the new one, and an open transaction is lost with the old server.
        self.generation = 0
        self.tx_lost = False
        self.create_fields: dict[str, Any] = {"session": sid, "ack_mode": mode}
        self.ready = conn.request("session.create", dict(self.create_fields))
        self.ready.add_done_callback(silence)
        conn.register_session(self)

    def __repr__(self) -> str:
        return f"<emsfast.Session {self.id} {self.ack_mode}>"

    # -- factories -------------------------------------------------------------------

    def producer(self, destination: Destination, *, window: int = 1000) -> Producer:
        """A producer for ``destination``; ``window`` bounds unconfirmed ``send_async`` calls."""
        from emsfast.client.producer import Producer

        self._check_open()
        if not isinstance(destination, Queue | Topic):
            raise InvalidError(f"producer destination must be Queue or Topic, got {destination!r}")
        if window < 1:
            raise InvalidError(f"window must be at least 1, got {window}")
        producer = Producer(self, self.connection.next_id(), destination, window)
        self._producers[producer.id] = producer
        return producer

    def consumer(self, destination: Destination, selector: str | None = None,
                 durable: str | None = None, nolocal: bool = False) -> Consumer:
        """A consumer; a bad selector raises ``SelectorError`` here, server errors at first use."""
        from emsfast.client.consumer import Consumer

        self._check_open()
        if not isinstance(destination, Queue | Topic):
            raise InvalidError(f"consumer destination must be Queue or Topic, got {destination!r}")
        if durable is not None:
            if not isinstance(destination, Topic):
                raise InvalidError("durable subscriptions are for topics only")
            if not durable:
                raise InvalidError("durable name must not be empty")
            if self.connection.client_id is None:
                raise InvalidError(
                    f"durable subscription {durable!r} needs a client_id on the connection"
                )
        consumer = Consumer(self, self.connection.next_id(), destination, selector, durable,
                            nolocal)
        self._consumers[consumer.id] = consumer
        return consumer

    def browser(self, queue: Queue, selector: str | None = None, *,
                batch: int = 100) -> QueueBrowser:
        """Browse ``queue`` without consuming: ``async for msg in session.browser(q)``.

        The snapshot is taken when the server receives the request; a bad selector
        raises ``SelectorError`` here.
        """
        from emsfast.client.browser import QueueBrowser

        self._check_open()
        return QueueBrowser(self, queue, selector, batch)

    def shared_consumer(self, topic: Topic, name: str,
                        selector: str | None = None) -> Consumer:
        """A consumer of the JMS 2.0 shared non-durable subscription ``name`` on
        ``topic``: consumers sharing it get each message once between them. The
        subscription lives while any consumer is attached; client id optional."""
        return self._shared(topic, name, selector, durable=False)

    def shared_durable_consumer(self, topic: Topic, name: str,
                                selector: str | None = None) -> Consumer:
        """A consumer of the shared durable subscription ``name`` (client id optional;
        with one, the subscription is ``clientID:name``). Delete it with
        ``unsubscribe(name)`` once no consumer is attached."""
        return self._shared(topic, name, selector, durable=True)

    def _shared(self, topic: Topic, name: str, selector: str | None,
                durable: bool) -> Consumer:
        from emsfast.client.consumer import Consumer

        self._check_open()
        if not isinstance(topic, Topic):
            raise InvalidError(f"shared subscriptions are for topics, got {topic!r}")
        if not isinstance(name, str) or not name:
            raise InvalidError(f"subscription name must be a non-empty string, got {name!r}")
        consumer = Consumer(self, self.connection.next_id(), topic, selector,
                            name if durable else None, False, shared=True,
                            subscription=None if durable else name)
        self._consumers[consumer.id] = consumer
        return consumer

    # -- temporary destinations and request/reply ------------------------------------

    def temporary_queue(self) -> TemporaryQueue:
        """A temporary queue of this session's connection (JMS createTemporaryQueue)."""
        self._check_open()
        return self.connection.temporary_queue()

    def temporary_topic(self) -> TemporaryTopic:
        self._check_open()
        return self.connection.temporary_topic()

    def requestor(self, destination: Destination) -> Requestor:
        """A ``Requestor`` for ``destination`` with its own temporary reply queue."""
        from emsfast.client.temporary import Requestor

        self._check_open()
        return Requestor(self, destination)

    async def request(self, destination: Destination, msg: Message,
                      timeout: float | None = None) -> Message | None:
        """One request/reply exchange; ``None`` if no reply came within ``timeout``."""
        async with self.requestor(destination) as requestor:
            return await requestor.request(msg, timeout)

    async def reply(self, request: Message, response: Message, *,
                    delivery_mode: str = "non_persistent") -> None:
        """Send ``response`` to ``request.reply_to`` with the request's correlation id
        (or, lacking one, its message id), as JMS request/reply expects."""
        self._check_open()
        target = request.reply_to
        if target is None:
            raise InvalidError("the request has no JMSReplyTo to answer")
        response.correlation_id = request.correlation_id or request.message_id
        producer = self._reply_producers.get(target)
        if producer is None:
            if len(self._reply_producers) >= _REPLY_PRODUCERS:
                _, old = self._reply_producers.popitem()
                await old.close()
            producer = self._reply_producers[target] = self.producer(target)
        try:
            await producer.send(response, delivery_mode=delivery_mode)
        except Exception:
            self._reply_producers.pop(target, None)    # e.g. the requestor's queue is gone
            raise

    # -- transactions and recovery ---------------------------------------------------

    async def commit(self) -> None:
        if not self.transacted:
            raise InvalidError("commit() needs a transacted session")
        if self.tx_lost:
            # What the new server saw of this transaction is rolled back too.
            self.tx_lost = False
            self._held.clear()
            self._acks = []
            await self._call("session.rollback")
            raise rolled_back()
        await self._call("session.commit")

    async def rollback(self) -> None:
        if not self.transacted:
            raise InvalidError("rollback() needs a transacted session")
        # The server returns only what this transaction consumed; buffered
        # deliveries the application has not taken stay valid.
        await self._call("session.rollback")

    async def recover(self) -> None:
        """Have the server redeliver every unacknowledged message of this session."""
        if self.transacted:
            raise InvalidError("recover() is for non-transacted sessions; use rollback()")
        self._check_open()
        await self.ready
        self._discard_unacked()
        # Deliveries arriving before the reply may have been sent before the
        # server processed the recover (then it returns and redelivers them) or
        # after (the redeliveries). The reply's last_tag tells them apart.
        self.limbo = []
        fence = 0
        try:
            reply = await self.connection.request("session.recover", {"session": self.id})
            fence = int(reply.get("last_tag", 0))
        finally:
            limbo, self.limbo = self.limbo, None
            for consumer, entry in limbo:
                if entry[1] <= fence:
                    consumer.drop_stale()
                else:
                    consumer.deliver(*entry)
            for consumer in self._consumers.values():
                consumer.release_discarded()

    async def unsubscribe(self, name: str) -> None:
        """Delete durable subscription ``name`` of the connection's client id (JMS)."""
        self._check_open()
        await self.ready
        await self.connection.unsubscribe(name)

    async def close(self) -> None:
        """Close the session and its producers and consumers; unacked messages return."""
        if self._closed:
            return
        self._closed = True
        for consumer in list(self._consumers.values()):
            consumer.closed_by_session()
        for producer in list(self._producers.values()):
            producer.closed_by_session()
        conn = self.connection
        conn.forget(self)
        if conn.is_closed:
            return
        try:
            await self.ready
        except Exception:
            return  # never existed on the server: nothing to close
        await conn.request("session.close", {"session": self.id})

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, op: str) -> None:
        self._check_open()
        await self.ready
        await self.connection.request(op, {"session": self.id})

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidError(f"session {self.id} is closed")
        self.connection.check_open()

    def _discard_unacked(self) -> None:
        # The server redelivers every unacked delivery, including the ones still in
        # local buffers, so those are dropped here rather than handed out twice.
        self._held.clear()
        for consumer in self._consumers.values():
            consumer.discard_buffered()

    # -- acks (called by consumers and messages) -------------------------------------

    def taken(self, msg: Message, tag: int) -> None:
        """The application took ``msg``: record or send its ack per the ack mode."""
        mode = self._mode
        if mode in _AUTO_ACKED:
            self._acks.append(tag)
            self.connection.proto.add_pending(self)
        elif mode == ACK_CLIENT:
            self._held[tag] = None
            msg._ack_hook = self._ack_client
        elif mode in _EXPLICIT:
            self._held[tag] = None
            gen = self.generation
            msg._ack_hook = lambda: self._ack_one(tag) if gen == self.generation else None
        # ACK_NONE: the server forgot the message as it delivered it.

    def failover(self) -> None:
        """The connection moved to another server: what was unacked comes back."""
        self._held.clear()
        self._acks = []
        self.limbo = None
        self.generation += 1
        if self.transacted:
            self.tx_lost = True

    def _ack_client(self) -> None:
        tags = list(self._held)
        self._held.clear()
        if tags:
            self._ack_tags(tags)

    def _ack_one(self, tag: int) -> None:
        self._held.pop(tag, None)
        self._ack_tags([tag])

    def held_tags(self) -> list[int]:
        """Tags taken but unacknowledged; the server keeps them when a consumer closes."""
        return list(self._held)

    def _ack_tags(self, tags: list[int]) -> None:
        self.connection.check_open()
        if self._closed:
            raise InvalidError(f"session {self.id} is closed; its messages were returned")
        proto = self.connection.proto
        proto.encoder.ack(self.id, tags)
        proto.schedule_flush()

    def emit(self, encoder: FrameEncoder) -> None:
        if self._acks:
            encoder.ack(self.id, self._acks)
            self._acks = []

    def forget_consumer(self, consumer: Consumer) -> None:
        self._consumers.pop(consumer.id, None)

    def forget_producer(self, producer: Producer) -> None:
        self._producers.pop(producer.id, None)

