"""The chaos checker's steady load: persistent producers and recording consumers.

Every send carries its producer's name and a sequence number (properties ``p`` and
``s``); producers record what the server confirmed or refused, consumers record
every delivery with its JMSRedelivered flag. All clients connect through the FT
URL list and fail over by themselves (client/failover.py); a connection that gives
up is replaced by a fresh one, its unconfirmed sends counted as uncertain.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import emsfast
from bench.chaos_check import ConsumerLog, ProducerLog
from emsfast.errors import ConnectionClosedError, EmsfastError

QUEUES = ("chaos.q0", "chaos.q1")
TOPIC = "chaos.t"
# (name, destination, ack mode): one consumer per queue so per-producer order is
# defined; two durable subscribers with different ack modes on the topic.
CONSUMERS = (
    ("c0", f"queue:{QUEUES[0]}", "auto"),
    ("c1", f"queue:{QUEUES[1]}", "client"),
    ("d0", f"topic:{TOPIC}", "auto"),
    ("d1", f"topic:{TOPIC}", "explicit"),
)
PRODUCERS = (("p0", f"queue:{QUEUES[0]}"), ("p1", f"queue:{QUEUES[1]}"),
             ("p2", f"topic:{TOPIC}"))
CLIENT_ACK_EVERY = 10


def destination(spec: str) -> emsfast.Queue | emsfast.Topic:
    kind, name = spec.split(":", 1)
    return emsfast.Queue(name) if kind == "queue" else emsfast.Topic(name)


async def connect(urls: str, client_id: str | None = None) -> emsfast.Connection:
    """A failover connection that keeps trying for about a minute per switch."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return await emsfast.connect(
                urls, client_id=client_id, connect_attempt_count=1, handshake_timeout=3.0,
                reconnect_attempt_count=240, reconnect_attempt_delay=0.25)
        except (EmsfastError, OSError):
            # The client id may still be held by our dropped connection (the server
            # has not seen it close yet), or no member is active right now.
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


@dataclass
class Load:
    urls: str
    rate: float                 # messages per second per producer
    body_size: int = 100

    def __post_init__(self) -> None:
        self.producers = {name: ProducerLog(name, dest) for name, dest in PRODUCERS}
        topic_producers = tuple(n for n, d in PRODUCERS if d.startswith("topic:"))
        self.consumers = {
            name: ConsumerLog(name, dest, tuple(n for n, d in PRODUCERS if d == dest)
                              if dest.startswith("queue:") else topic_producers)
            for name, dest, _ in CONSUMERS}
        self._stop_sending = asyncio.Event()
        self._stop_receiving = asyncio.Event()
        self.receiving = asyncio.Event()    # cleared: consumers let a backlog build
        self.receiving.set()
        self._tasks: list[asyncio.Task[None]] = []
        self.last_delivery = time.monotonic()
        self.reconnects = 0
        self.errors: list[str] = []     # unexpected client failures, for the report
        self.stopped: dict[str, str] = {}   # client -> why it ended before the run did

    async def start(self) -> None:
        # Durable subscriptions first: a topic send is only owed to existing durables.
        ready = [asyncio.get_running_loop().create_future() for _ in CONSUMERS]
        for (name, dest, ack), fut in zip(CONSUMERS, ready, strict=True):
            self._spawn(name, self._consume(name, dest, ack, fut))
        await asyncio.wait_for(asyncio.gather(*ready), 60)
        for name, dest in PRODUCERS:
            self._spawn(name, self._produce(name, dest))

    def _spawn(self, name: str, coro: Any) -> None:
        self._tasks.append(asyncio.ensure_future(self._guard(name, coro)))

    async def _guard(self, name: str, coro: Any) -> None:
        # A client that could not reconnect for a minute stops: say so, as a smaller
        # load would otherwise pass unnoticed.
        try:
            await coro
        except Exception as exc:
            self.stopped[name] = f"{type(exc).__name__}: {exc}"[:300]

    @property
    def sent(self) -> int:
        return sum(p.sent for p in self.producers.values())

    @property
    def received(self) -> int:
        return sum(len(c.deliveries) for c in self.consumers.values())

    def missing(self) -> int:
        """Confirmed messages some consumer still lacks (0: the drain is complete)."""
        total = 0
        for c in self.consumers.values():
            got = {(p, s) for p, s, _ in c.deliveries}
            total += sum(1 for p in c.expects for s in self.producers[p].confirmed
                         if (p, s) not in got)
        return total

    async def stop_sending(self, timeout: float = 60.0) -> None:
        self._stop_sending.set()
        producer_tasks = self._tasks[len(CONSUMERS):]
        await asyncio.wait(producer_tasks, timeout=timeout)

    async def stop(self) -> None:
        self._stop_sending.set()
        self._stop_receiving.set()
        _, pending = await asyncio.wait(self._tasks, timeout=30)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- producers -------------------------------------------------------------------

    async def _produce(self, name: str, dest: str) -> None:
        log = self.producers[name]
        body = "x" * self.body_size
        began, count = time.monotonic(), 0
        while not self._stop_sending.is_set():
            conn = await connect(self.urls)
            producer = conn.session().producer(destination(dest), window=200)
            inflight: dict[int, asyncio.Future[Any]] = {}
            try:
                while not self._stop_sending.is_set():
                    log.sent += 1
                    seq = log.sent
                    fut = await producer.send_async(
                        emsfast.TextMessage(body, properties={"p": name, "s": seq}))
                    inflight[seq] = fut
                    fut.add_done_callback(
                        lambda f, seq=seq, inflight=inflight: self._sent(log, inflight, seq, f))
                    count += 1
                    ahead = began + count / self.rate - time.monotonic()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                with contextlib.suppress(EmsfastError):
                    await asyncio.wait_for(producer.flush(), 60)
            except (TimeoutError, EmsfastError, OSError) as exc:
                self._note_error(f"{name}: {type(exc).__name__}: {exc}")
                self.reconnects += 1
            finally:
                for seq in list(inflight):      # never confirmed nor refused
                    log.uncertain[seq] = "connection given up before the confirm"
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 10)

    @staticmethod
    def _sent(log: ProducerLog, inflight: dict[int, Any], seq: int,
              fut: asyncio.Future[Any]) -> None:
        inflight.pop(seq, None)
        if fut.cancelled():
            log.uncertain[seq] = "cancelled"
            return
        exc = fut.exception()
        if exc is None:
            log.confirmed.add(seq)
        elif isinstance(exc, ConnectionClosedError):
            log.uncertain[seq] = f"{type(exc).__name__}: {exc}"
        else:
            log.refused[seq] = f"{type(exc).__name__}: {exc}"[:200]

    # -- consumers -------------------------------------------------------------------

    async def _consume(self, name: str, dest: str, ack: str,
                       ready: asyncio.Future[None]) -> None:
        log = self.consumers[name]
        durable = name if dest.startswith("topic:") else None
        while not self._stop_receiving.is_set():
            conn = await connect(self.urls, client_id=f"chaos-{name}" if durable else None)
            try:
                consumer = conn.session(ack_mode=ack).consumer(destination(dest),
                                                               durable=durable)
                await consumer.ready
                if not ready.done():
                    ready.set_result(None)
                taken = 0
                while not self._stop_receiving.is_set():
                    await self.receiving.wait()
                    msg = await consumer.receive(0.5)
                    if msg is None:
                        continue
                    self.last_delivery = time.monotonic()
                    log.deliveries.append((str(msg.get("p")), int(msg.get("s", 0)),
                                           msg.redelivered))
                    taken += 1
                    if ack == "explicit" or (ack == "client" and taken % CLIENT_ACK_EVERY == 0):
                        msg.acknowledge()
            except (EmsfastError, OSError) as exc:
                self._note_error(f"{name}: {type(exc).__name__}: {exc}")
                self.reconnects += 1
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 10)

    def _note_error(self, text: str) -> None:
        if len(self.errors) < 50:
            self.errors.append(f"{time.strftime('%H:%M:%S')} {text}"[:300])
