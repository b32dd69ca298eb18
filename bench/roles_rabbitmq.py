"""RabbitMQ roles with aiormq: ``python -m bench.roles_rabbitmq ROLE --url amqp://...``.

Queues are the default exchange's routing keys; ``--kind topic`` publishes to a fanout
exchange that every subscriber binds its own exclusive queue to. ``--mode persistent``
declares durable queues, sends with delivery_mode 2 and waits for publisher confirms
with ``--window`` outstanding; non-persistent sends wait for the socket write once per
``WAIT_EVERY``. Consumers use basic.qos prefetch 1,000 and one
``multiple`` ack per ``ACK_EVERY`` messages.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import aiormq
from pamqp import commands as spec

from bench import roles_base
from bench.roles_base import ACK_EVERY, STALL_SECONDS, Stopwatch, await_count, dest_names, out

PREFETCH = 1000
WAIT_EVERY = 100


def _amqp_url(url: str) -> str:
    host, port = roles_base.host_port(url)
    return f"amqp://guest:guest@{host}:{port}/"


async def _declare(ch: Any, a: argparse.Namespace, names: list[str]) -> None:
    durable = a.mode == "persistent"
    if a.kind == "topic":
        await ch.exchange_declare(a.dest, exchange_type="fanout")
        return
    for name in names:
        await ch.queue_declare(name, durable=durable)


async def _produce(conn: Any, a: argparse.Namespace) -> dict[str, Any]:
    persistent = a.mode == "persistent"
    ch = await conn.channel(publisher_confirms=persistent)
    names = dest_names(a)
    await _declare(ch, a, names)
    props = spec.Basic.Properties(delivery_mode=2 if persistent else 1)
    data = roles_base.payload(a.size)
    exchange = a.dest if a.kind == "topic" else ""
    keys = [""] if a.kind == "topic" else names
    out("READY")
    roles_base.wait_go()
    publish, n = ch.basic_publish, len(keys)
    watch = Stopwatch()
    t_first = time.monotonic_ns()
    if persistent:
        window = asyncio.Semaphore(a.window)
        nacks: list[Any] = []
        tasks: set[asyncio.Task[None]] = set()

        async def confirmed(key: str) -> None:
            try:
                got = await publish(data, exchange=exchange, routing_key=key,
                                    properties=props, wait=False)
                if not isinstance(got, spec.Basic.Ack):
                    nacks.append(got)
            finally:
                window.release()

        for i in range(a.count):
            await window.acquire()
            t = asyncio.ensure_future(confirmed(keys[i % n]))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        t_sent = time.monotonic_ns()
        if tasks:
            await asyncio.gather(*tasks)
        if nacks:
            raise SystemExit(f"{len(nacks)} publishes not confirmed: {nacks[0]!r}")
    else:
        # wait=False queues the frames; every WAIT_EVERY-th publish waits until they
        # are written, which bounds the client's buffer as TCP backpressure would.
        for i in range(a.count):
            await publish(data, exchange=exchange, routing_key=keys[i % n], properties=props,
                          wait=i % WAIT_EVERY == 0)
        t_sent = time.monotonic_ns()
        # A synchronous method on the same channel: its answer comes after the broker
        # has taken every publish before it (closing at once could lose the tail).
        await ch.queue_declare("bench.flush", auto_delete=True)
    t_flushed = time.monotonic_ns()
    return {"role": "produce", "count": a.count, "t_first": t_first, "t_sent": t_sent,
            "t_flushed": t_flushed, "cpu_s": watch.cpu()}


async def _consume(conn: Any, a: argparse.Namespace) -> dict[str, Any]:
    ch = await conn.channel()
    await ch.basic_qos(prefetch_count=PREFETCH)
    names = dest_names(a)
    await _declare(ch, a, names)
    if a.kind == "topic":
        ok = await ch.queue_declare("", exclusive=True, auto_delete=True)
        await ch.queue_bind(ok.queue, a.dest)
        names = [ok.queue]
    done = asyncio.Event()
    state = {"n": 0, "t_first": 0, "t_last": 0, "cpu0": 0.0}
    total = a.count
    ack = ch.basic_ack

    async def on_msg(msg: Any) -> None:
        n = state["n"] = state["n"] + 1
        if n == 1:
            state["t_first"] = time.monotonic_ns()
            state["cpu0"] = time.process_time()
        if n % ACK_EVERY == 0 or n == total:
            await ack(msg.delivery_tag, multiple=True)
        if n == total:
            state["t_last"] = time.monotonic_ns()
            done.set()

    for name in names:
        await ch.basic_consume(name, on_msg, no_ack=False)
    out("READY")
    await await_count(lambda: int(state["n"]), total, done, "consumer")
    return {"role": "consume", "count": total, "t_first": state["t_first"],
            "t_last": state["t_last"], "cpu_s": time.process_time() - state["cpu0"],
            "prefetch": PREFETCH}


async def _request(conn: Any, a: argparse.Namespace) -> dict[str, Any]:
    ch = await conn.channel()
    await ch.queue_declare(a.dest)
    await ch.queue_declare(a.reply)
    replies: asyncio.Queue[Any] = asyncio.Queue()

    async def on_reply(msg: Any) -> None:
        replies.put_nowait(msg)

    await ch.basic_consume(a.reply, on_reply, no_ack=True)
    out("READY")
    roles_base.wait_go()
    data = roles_base.payload(a.size)
    publish, get = ch.basic_publish, replies.get
    lat = [0] * a.count
    perf = time.perf_counter_ns
    watch = Stopwatch()
    t_first = time.monotonic_ns()
    for i in range(a.count):
        cid = str(i)
        t0 = perf()
        await publish(data, routing_key=a.dest, properties=spec.Basic.Properties(
            reply_to=a.reply, correlation_id=cid, delivery_mode=1))
        reply = await asyncio.wait_for(get(), STALL_SECONDS)
        lat[i] = perf() - t0
        if reply.header.properties.correlation_id != cid:
            raise SystemExit(f"request {i}: reply {reply.header.properties.correlation_id!r}")
    t_last = time.monotonic_ns()
    lat.sort()
    return {"role": "request", "count": a.count, "t_first": t_first, "t_last": t_last,
            "cpu_s": watch.cpu(), "latency_ns_sorted": lat}


async def _respond(conn: Any, a: argparse.Namespace) -> dict[str, Any]:
    ch = await conn.channel()
    await ch.queue_declare(a.dest)
    data = roles_base.payload(a.size)
    done = asyncio.Event()
    state = {"n": 0, "cpu0": 0.0}
    publish = ch.basic_publish

    async def on_req(msg: Any) -> None:
        p = msg.header.properties
        await publish(data, routing_key=p.reply_to, properties=spec.Basic.Properties(
            correlation_id=p.correlation_id, delivery_mode=1))
        n = state["n"] = state["n"] + 1
        if n == 1:
            state["cpu0"] = time.process_time()
        if n == a.count:
            done.set()

    await ch.basic_consume(a.dest, on_req, no_ack=True)
    out("READY")
    await await_count(lambda: int(state["n"]), a.count, done, "responder")
    return {"role": "respond", "count": a.count, "cpu_s": time.process_time() - state["cpu0"]}


async def _main(a: argparse.Namespace) -> dict[str, Any]:
    conn = await aiormq.connect(_amqp_url(a.url))
    try:
        if a.role == "produce":
            return await _produce(conn, a)
        if a.role == "consume":
            return await _consume(conn, a)
        if a.role == "request":
            return await _request(conn, a)
        if a.role == "respond":
            return await _respond(conn, a)
        raise SystemExit(f"role {a.role} is not implemented for RabbitMQ")
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    return roles_base.run_async(roles_base.parse_args("bench.roles_rabbitmq", argv), _main)


if __name__ == "__main__":
    sys.exit(main())
