"""The blocking facade: the asyncio client, same names, synchronous calls.

Each ``BlockingConnection`` runs one private event loop in a daemon thread and calls
into it with ``run_coroutine_threadsafe(...).result()``. Messages are the client's own
classes; ``msg.acknowledge()`` on a received message runs synchronously.

    with emsfast.blocking.connect("tcp://localhost:7222") as conn:
        session = conn.session()
        session.producer(emsfast.Queue("orders")).send(emsfast.TextMessage("hi"))
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from emsfast.client.connection import Connection
from emsfast.client.connection import connect as _connect
from emsfast.client.consumer import Consumer
from emsfast.client.messages import Destination, Message, Queue, Topic
from emsfast.client.producer import Producer, SendFuture
from emsfast.client.session import Session
from emsfast.client.temporary import TemporaryQueue, TemporaryTopic
from emsfast.consts import DEFAULT_PRIORITY

__all__ = [
    "BlockingConnection",
    "BlockingConsumer",
    "BlockingProducer",
    "BlockingSendFuture",
    "BlockingSession",
    "connect",
]

T = TypeVar("T")


class _LoopThread:
    """One event loop in a daemon thread; callers block on its results."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="emsfast-blocking", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("blocking emsfast call made from its own event loop thread")
        cf = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return cf.result()
        except BaseException:
            cf.cancel()  # e.g. KeyboardInterrupt: stop the coroutine in the loop too
            raise

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        async def call() -> T:
            return fn(*args)

        return self.run(call())

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def connect(url: str = "tcp://localhost:7222", user: str | None = None,
            password: str | None = None, client_id: str | None = None,
            **options: Any) -> BlockingConnection:
    """Blocking ``emsfast.connect``: same arguments, a ``BlockingConnection`` back."""
    runner = _LoopThread()
    try:
        conn = runner.run(_connect(url, user, password, client_id, **options))
    except BaseException:
        runner.stop()
        raise
    return BlockingConnection(runner, conn)


class BlockingConnection:
    def __init__(self, runner: _LoopThread, conn: Connection) -> None:
        self._runner = runner
        self.connection = conn

    @property
    def url(self) -> str:
        return self.connection.url

    @property
    def server_name(self) -> str:
        return self.connection.server_name

    @property
    def conn_id(self) -> Any:
        return self.connection.conn_id

    @property
    def client_id(self) -> str | None:
        return self.connection.client_id

    @property
    def is_closed(self) -> bool:
        return self.connection.is_closed

    def session(self, ack_mode: str = "auto", transacted: bool = False) -> BlockingSession:
        return BlockingSession(self._runner,
                               self._runner.call(self.connection.session, ack_mode, transacted))

    def ping(self) -> None:
        self._runner.run(self.connection.ping())

    def unsubscribe(self, name: str) -> None:
        self._runner.run(self.connection.unsubscribe(name))

    def close(self) -> None:
        """Close the connection and stop its loop thread. Idempotent."""
        if self._runner.loop.is_closed():
            return
        try:
            self._runner.run(self.connection.close())
        finally:
            self._runner.stop()

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<emsfast.blocking.BlockingConnection {self.connection!r}>"


class BlockingSession:
    def __init__(self, runner: _LoopThread, session: Session) -> None:
        self._runner = runner
        self.session = session

    @property
    def ack_mode(self) -> str:
        return self.session.ack_mode

    @property
    def transacted(self) -> bool:
        return self.session.transacted

    def producer(self, destination: Destination, *, window: int = 1000) -> BlockingProducer:
        producer = self._runner.call(lambda: self.session.producer(destination, window=window))
        return BlockingProducer(self._runner, producer)

    def consumer(self, destination: Destination, selector: str | None = None,
                 durable: str | None = None, nolocal: bool = False) -> BlockingConsumer:
        consumer = self._runner.call(self.session.consumer, destination, selector, durable,
                                     nolocal)
        return BlockingConsumer(self._runner, consumer)

    def shared_consumer(self, topic: Topic, name: str,
                        selector: str | None = None) -> BlockingConsumer:
        consumer = self._runner.call(self.session.shared_consumer, topic, name, selector)
        return BlockingConsumer(self._runner, consumer)

    def shared_durable_consumer(self, topic: Topic, name: str,
                                selector: str | None = None) -> BlockingConsumer:
        consumer = self._runner.call(self.session.shared_durable_consumer, topic, name,
                                     selector)
        return BlockingConsumer(self._runner, consumer)

    def temporary_queue(self) -> TemporaryQueue:
        return self._runner.call(self.session.temporary_queue)

    def temporary_topic(self) -> TemporaryTopic:
        return self._runner.call(self.session.temporary_topic)

    def delete_temporary(self, destination: TemporaryQueue | TemporaryTopic) -> None:
        self._runner.run(destination.delete())

    def browse(self, queue: Queue, selector: str | None = None) -> list[Message]:
        """The whole snapshot of ``queue`` (selector applied), without consuming."""
        async def browse() -> list[Message]:
            async with self.session.browser(queue, selector) as browser:
                return await browser.messages()

        return self._runner.run(browse())

    def request(self, destination: Destination, msg: Message,
                timeout: float | None = None) -> Message | None:
        return self._runner.run(self.session.request(destination, msg, timeout))

    def reply(self, request: Message, response: Message) -> None:
        self._runner.run(self.session.reply(request, response))

    def commit(self) -> None:
        self._runner.run(self.session.commit())

    def rollback(self) -> None:
        self._runner.run(self.session.rollback())

    def recover(self) -> None:
        self._runner.run(self.session.recover())

    def unsubscribe(self, name: str) -> None:
        self._runner.run(self.session.unsubscribe(name))

    def close(self) -> None:
        self._runner.run(self.session.close())

    def __enter__(self) -> BlockingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlockingSendFuture(concurrent.futures.Future[Message]):
    """A ``send_async`` result usable from any thread; tracks being looked at like SendFuture."""

    def __init__(self, afut: SendFuture) -> None:
        super().__init__()
        self._afut = afut

    def result(self, timeout: float | None = None) -> Message:
        self._afut.seen = True
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._afut.seen = True
        return super().exception(timeout)

    def _copy(self, afut: asyncio.Future[Message]) -> None:
        # asyncio.Future's own methods: reading here must not count as "seen".
        if afut.cancelled():
            self.cancel()
            return
        exc = asyncio.Future.exception(afut)
        if exc is not None:
            self.set_exception(exc)
        else:
            self.set_result(asyncio.Future.result(afut))


class BlockingProducer:
    def __init__(self, runner: _LoopThread, producer: Producer) -> None:
        self._runner = runner
        self.producer = producer

    @property
    def destination(self) -> Destination:
        return self.producer.destination

    def send(self, msg: Message, delivery_mode: str = "persistent", priority: int = DEFAULT_PRIORITY,
             ttl: int = 0) -> None:
        self._runner.run(self.producer.send(msg, delivery_mode, priority, ttl))

    def send_async(self, msg: Message, delivery_mode: str = "persistent", priority: int = DEFAULT_PRIORITY,
                   ttl: int = 0) -> BlockingSendFuture:
        async def send() -> BlockingSendFuture:
            afut = await self.producer.send_async(msg, delivery_mode, priority, ttl)
            cf = BlockingSendFuture(afut)
            afut.add_done_callback(cf._copy)
            return cf

        return self._runner.run(send())

    def flush(self) -> None:
        self._runner.run(self.producer.flush())

    def close(self) -> None:
        self._runner.run(self.producer.close())


class BlockingConsumer:
    def __init__(self, runner: _LoopThread, consumer: Consumer) -> None:
        self._runner = runner
        self.consumer = consumer

    @property
    def destination(self) -> Destination:
        return self.consumer.destination

    def receive(self, timeout: float | None = None) -> Message | None:
        msg = self._runner.run(self.consumer.receive(timeout))
        if msg is not None and msg._ack_hook is not None:
            hook = msg._ack_hook
            msg._ack_hook = lambda: self._runner.call(hook)
        return msg

    def __iter__(self) -> Iterator[Message]:
        while (msg := self.receive()) is not None:
            yield msg

    def close(self) -> None:
        self._runner.run(self.consumer.close())
