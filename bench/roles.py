"""Client roles run as child processes: ``python -m bench.roles ROLE [options]``.

The contract with the orchestrator (``bench/e2e.py``) is client-neutral so that peer
brokers (issue 8) can add their own roles module with the same lines:

- ``READY`` on stdout once connected and subscribed;
- senders then block until ``GO`` arrives on stdin, so every consumer is in place;
- one final JSON line with the role's measurements; errors go to stderr, exit 1.

Times are ``time.monotonic_ns()``: CLOCK_MONOTONIC is one clock for every process on
the machine, so a producer's first send and a consumer's last receive can be subtracted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import sys
import time
from typing import Any

import emsfast
from bench import roles_base
from bench.roles_base import STALL_SECONDS, dest_names
from bench.roles_base import Stopwatch as _Stopwatch
from bench.roles_base import out as _out
from bench.roles_base import wait_go as _wait_go


def _dest(kind: str, name: str) -> emsfast.Queue | emsfast.Topic:
    return emsfast.Queue(name) if kind == "queue" else emsfast.Topic(name)


def _factory(body: str, size: int) -> Any:
    """A constructor for fresh messages: applications build one per send, so do we."""
    # Bound once: emsfast's lazy module __getattr__ costs an import_module per lookup.
    if body == "text":
        text, text_cls = "x" * size, emsfast.TextMessage
        return lambda: text_cls(text)
    data, bytes_cls = b"x" * size, emsfast.BytesMessage
    return lambda: bytes_cls(data)



async def _produce(conn: emsfast.Connection, a: argparse.Namespace,
                   ready: asyncio.Future[None] | None) -> dict[str, Any]:
    session = conn.session(ack_mode="auto")
    producers = [session.producer(_dest(a.kind, d), window=a.window) for d in dest_names(a)]
    for p in producers:
        await p.ready
    producer = producers[0]
    if ready is None:
        _out("READY")
        _wait_go()
    else:
        await ready
    make = _factory(a.body, a.size)
    mode = a.mode
    watch = _Stopwatch()
    t_first = time.monotonic_ns()
    if mode == "persistent":
        # A window of unconfirmed sends; flush() waits for every confirm.
        send_async = producer.send_async
        for _ in range(a.count):
            await send_async(make(), delivery_mode=mode)
    elif len(producers) > 1:
        sends = [p.send for p in producers]
        n = len(sends)
        for i in range(a.count):
            await sends[i % n](make(), delivery_mode=mode)
    else:
        send = producer.send
        for _ in range(a.count):
            await send(make(), delivery_mode=mode)
    t_sent = time.monotonic_ns()
    for p in producers:
        await p.flush()
    t_flushed = time.monotonic_ns()
    return {"role": "produce", "count": a.count, "t_first": t_first, "t_sent": t_sent,
            "t_flushed": t_flushed, "cpu_s": watch.cpu()}


async def _consume(conn: emsfast.Connection, a: argparse.Namespace,
                   ready: asyncio.Future[None] | None) -> dict[str, Any]:
    session = conn.session(ack_mode=a.ack)
    consumers = [session.consumer(_dest(a.kind, d)) for d in dest_names(a)]
    for c in consumers:
        await c.ready
    consumer = consumers[0]
    if ready is None:
        _out("READY")
    else:
        ready.set_result(None)
    if len(consumers) > 1:
        return await _consume_many(consumers, a)
    receive = consumer.receive
    msg = await receive(timeout=STALL_SECONDS * 4)  # the first waits for GO as well
    if msg is None:
        raise SystemExit("consumer: no first message")
    watch = _Stopwatch()
    t_first = time.monotonic_ns()
    for i in range(1, a.count):
        msg = await receive(timeout=STALL_SECONDS)
        if msg is None:
            raise SystemExit(f"consumer stalled after {i} of {a.count} messages")
    t_last = time.monotonic_ns()
    nbytes = len(msg.body)
    return {"role": "consume", "count": a.count, "t_first": t_first, "t_last": t_last,
            "cpu_s": watch.cpu(), "last_body_bytes": nbytes, "prefetch": consumer.prefetch}


async def _consume_many(consumers: list[Any], a: argparse.Namespace) -> dict[str, Any]:
    """One task per consumer; the producer spreads ``count`` round-robin over them."""
    n = len(consumers)
    firsts: list[int] = []
    watch = _Stopwatch()

    async def drain(k: int, consumer: Any) -> int:
        want = a.count // n + (1 if k < a.count % n else 0)
        for i in range(want):
            msg = await consumer.receive(timeout=STALL_SECONDS * 4 if i == 0 else STALL_SECONDS)
            if msg is None:
                raise SystemExit(f"consumer {k} stalled after {i} of {want} messages")
            if not firsts:
                firsts.append(time.monotonic_ns())
        return time.monotonic_ns()

    lasts = await asyncio.gather(*(drain(k, c) for k, c in enumerate(consumers)))
    return {"role": "consume", "count": a.count, "t_first": firsts[0], "t_last": max(lasts),
            "cpu_s": watch.cpu(), "prefetch": consumers[0].prefetch}


async def _request(conn: emsfast.Connection, a: argparse.Namespace) -> dict[str, Any]:
    """Sequential round trips; latency from before send() to after receive()."""
    session = conn.session(ack_mode=a.ack)
    reply_queue = emsfast.Queue(a.reply)
    producer = session.producer(emsfast.Queue(a.dest))
    consumer = session.consumer(reply_queue)
    await producer.ready
    await consumer.ready
    _out("READY")
    _wait_go()
    make = _factory(a.body, a.size)
    send, receive = producer.send, consumer.receive
    lat = [0] * a.count
    perf = time.perf_counter_ns
    watch = _Stopwatch()
    t_first = time.monotonic_ns()
    for i in range(a.count):
        msg = make()
        msg.reply_to = reply_queue
        msg.correlation_id = cid = str(i)
        t0 = perf()
        await send(msg, delivery_mode="non_persistent")
        reply = await receive(timeout=STALL_SECONDS)
        lat[i] = perf() - t0
        if reply is None or reply.correlation_id != cid:
            got = None if reply is None else reply.correlation_id
            raise SystemExit(f"request {i}: expected reply {cid!r}, got {got!r}")
    t_last = time.monotonic_ns()
    lat.sort()
    return {"role": "request", "count": a.count, "t_first": t_first, "t_last": t_last,
            "cpu_s": watch.cpu(), "latency_ns_sorted": lat}


async def _respond(conn: emsfast.Connection, a: argparse.Namespace) -> dict[str, Any]:
    """Answer ``count`` requests on their reply_to with the same correlation id."""
    session = conn.session(ack_mode=a.ack)
    consumer = session.consumer(emsfast.Queue(a.dest))
    await consumer.ready
    producers: dict[str, Any] = {}
    _out("READY")
    make = _factory(a.body, a.size)
    watch: _Stopwatch | None = None
    for i in range(a.count):
        req = await consumer.receive(timeout=STALL_SECONDS * 4)
        if req is None:
            raise SystemExit(f"responder stalled after {i} of {a.count} requests")
        if watch is None:
            watch = _Stopwatch()
        dest = req.reply_to
        if dest is None:
            raise SystemExit(f"request {i} has no reply_to")
        producer = producers.get(dest.name)
        if producer is None:
            producer = producers[dest.name] = session.producer(dest)
        reply = make()
        reply.correlation_id = req.correlation_id
        await producer.send(reply, delivery_mode="non_persistent")
    for producer in producers.values():
        await producer.flush()
    return {"role": "respond", "count": a.count, "cpu_s": watch.cpu() if watch else 0.0}


async def _pair(conn_p: emsfast.Connection, conn_c: emsfast.Connection,
                a: argparse.Namespace) -> dict[str, Any]:
    """Producer and consumer in one process and loop, each on its own connection."""
    loop = asyncio.get_running_loop()
    subscribed: asyncio.Future[None] = loop.create_future()
    go: asyncio.Future[None] = loop.create_future()
    consume = asyncio.ensure_future(_consume(conn_c, a, subscribed))
    produce = asyncio.ensure_future(_produce(conn_p, a, go))
    first: list[asyncio.Future[Any]] = [subscribed, consume]
    await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
    if consume.done():
        consume.result()  # raises why the consumer failed
    _out("READY")
    await loop.run_in_executor(None, _wait_go)
    go.set_result(None)
    p, c = await asyncio.gather(produce, consume)
    return {"role": "pair", "produce": p, "consume": c}


async def _main(a: argparse.Namespace) -> dict[str, Any]:
    tls: dict[str, Any] = {"ssl_trusted": a.ssl_trusted} if a.ssl_trusted else {}
    conn = await emsfast.connect(a.url, **tls)
    conns = [conn]
    try:
        if a.role == "produce":
            return await _produce(conn, a, None)
        if a.role == "consume":
            return await _consume(conn, a, None)
        if a.role == "request":
            return await _request(conn, a)
        if a.role == "respond":
            return await _respond(conn, a)
        conns.append(await emsfast.connect(a.url, **tls))
        return await _pair(conn, conns[1], a)
    finally:
        for c in conns:
            await c.close()


def main(argv: list[str] | None = None) -> int:
    a = roles_base.parse_args("bench.roles", argv)
    factory = None
    if a.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    prof_dir = os.environ.get("EMSFAST_BENCH_CPROFILE")
    prof = cProfile.Profile() if prof_dir else None
    with asyncio.Runner(loop_factory=factory) as runner:
        if prof is not None:
            prof.enable()
        try:
            result = runner.run(_main(a))
        finally:
            if prof is not None:
                prof.disable()
                prof.dump_stats(f"{prof_dir}-{a.role}-{os.getpid()}.prof")
    result["loop"] = a.loop
    _out(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
