"""NATS roles with nats-py: ``python -m bench.roles_nats ROLE --url nats://... [options]``.

Non-persistent workloads use core NATS subjects; ``--mode persistent`` uses a JetStream
file stream with work-queue retention (the server runs with ``sync_interval: always``,
see ``bench/peers.py``): ``publish_async`` with ``--window`` acks outstanding, and a
pull consumer acking each message (a work-queue stream requires explicit acks; an
acked message is deleted, as a queue's is).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from bench import roles_base
from bench.roles_base import STALL_SECONDS, Stopwatch, await_count, dest_names, out, wait_go

# Core NATS drops messages for a slow subscriber; give both ends room so that a
# throughput run measures rate, not the default limits.
SUB_PENDING_MSGS = 4_000_000
SUB_PENDING_BYTES = 2 * 1024**3
FETCH_BATCH = 500


def _stream_name(subject: str) -> str:
    return "BENCH_" + subject.replace(".", "_").upper()


async def _ensure_stream(js: Any, subject: str) -> str:
    name = _stream_name(subject)
    try:
        await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=name, subjects=[subject],
                                         retention=RetentionPolicy.WORK_QUEUE,
                                         storage=StorageType.FILE))
    return name


async def _produce(nc: Any, a: argparse.Namespace) -> dict[str, Any]:
    subjects = dest_names(a)
    data = roles_base.payload(a.size)
    js = None
    if a.mode == "persistent":
        js = nc.jetstream(publish_async_max_pending=a.window)
        await _ensure_stream(js, a.dest)
    out("READY")
    wait_go()
    watch = Stopwatch()
    t_first = time.monotonic_ns()
    futures: list[Any] = []
    if js is not None:
        publish_async = js.publish_async
        append = futures.append
        for _ in range(a.count):
            append(await publish_async(a.dest, data))
    elif len(subjects) > 1:
        publish, n = nc.publish, len(subjects)
        for i in range(a.count):
            await publish(subjects[i % n], data)
    else:
        publish, subject = nc.publish, a.dest
        for _ in range(a.count):
            await publish(subject, data)
    t_sent = time.monotonic_ns()
    if js is not None:
        await js.publish_async_completed()
        failed = [f.exception() for f in futures if f.exception() is not None]
        if failed:
            raise SystemExit(f"{len(failed)} JetStream publishes failed: {failed[0]!r}")
    await nc.flush(timeout=STALL_SECONDS)
    t_flushed = time.monotonic_ns()
    return {"role": "produce", "count": a.count, "t_first": t_first, "t_sent": t_sent,
            "t_flushed": t_flushed, "cpu_s": watch.cpu()}


async def _consume_js(nc: Any, a: argparse.Namespace) -> dict[str, Any]:
    js = nc.jetstream()
    stream = await _ensure_stream(js, a.dest)
    psub = await js.pull_subscribe(a.dest, durable="bench", stream=stream,
                                   config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT,
                                                         max_ack_pending=a.window * 10))
    out("READY")
    got, t_first, watch = 0, 0, Stopwatch()
    last_progress = time.monotonic()
    while got < a.count:
        try:
            msgs = await psub.fetch(batch=min(FETCH_BATCH, a.count - got), timeout=5)
        except TimeoutError:
            limit = STALL_SECONDS * (4 if got == 0 else 1)
            if time.monotonic() - last_progress > limit:
                raise SystemExit(f"consumer stalled after {got} of {a.count}") from None
            continue
        if not got:
            t_first, watch = time.monotonic_ns(), Stopwatch()
        got += len(msgs)
        last_progress = time.monotonic()
        for m in msgs:
            await m.ack()
    t_last = time.monotonic_ns()
    await nc.flush(timeout=STALL_SECONDS)
    return {"role": "consume", "count": a.count, "t_first": t_first, "t_last": t_last,
            "cpu_s": watch.cpu(), "prefetch": FETCH_BATCH}


async def _consume(nc: Any, a: argparse.Namespace) -> dict[str, Any]:
    if a.mode == "persistent":
        return await _consume_js(nc, a)
    done = asyncio.Event()
    state = {"n": 0, "t_first": 0, "t_last": 0, "cpu0": 0.0}
    total = a.count

    async def on_msg(msg: Any) -> None:
        n = state["n"] = state["n"] + 1
        if n == 1:
            state["t_first"] = time.monotonic_ns()
            state["cpu0"] = time.process_time()
        if n == total:
            state["t_last"] = time.monotonic_ns()
            done.set()

    for subject in dest_names(a):
        await nc.subscribe(subject, cb=on_msg, pending_msgs_limit=SUB_PENDING_MSGS,
                           pending_bytes_limit=SUB_PENDING_BYTES)
    await nc.flush(timeout=STALL_SECONDS)
    out("READY")
    await await_count(lambda: int(state["n"]), total, done, "consumer")
    return {"role": "consume", "count": total, "t_first": state["t_first"],
            "t_last": state["t_last"], "cpu_s": time.process_time() - state["cpu0"],
            "prefetch": None}


async def _request(nc: Any, a: argparse.Namespace) -> dict[str, Any]:
    data = roles_base.payload(a.size)
    await nc.request(a.dest, data, timeout=STALL_SECONDS * 4)  # the responder is there
    out("READY")
    wait_go()
    request, subject = nc.request, a.dest
    lat = [0] * a.count
    perf = time.perf_counter_ns
    watch = Stopwatch()
    t_first = time.monotonic_ns()
    for i in range(a.count):
        t0 = perf()
        await request(subject, data, timeout=STALL_SECONDS)
        lat[i] = perf() - t0
    t_last = time.monotonic_ns()
    lat.sort()
    return {"role": "request", "count": a.count, "t_first": t_first, "t_last": t_last,
            "cpu_s": watch.cpu(), "latency_ns_sorted": lat}


async def _respond(nc: Any, a: argparse.Namespace) -> dict[str, Any]:
    data = roles_base.payload(a.size)
    done = asyncio.Event()
    state = {"n": 0, "cpu0": 0.0}
    publish = nc.publish
    total = a.count + 1  # the requester's readiness probe

    async def on_req(msg: Any) -> None:
        await publish(msg.reply, data)
        n = state["n"] = state["n"] + 1
        if n == 1:
            state["cpu0"] = time.process_time()
        if n == total:
            done.set()

    await nc.subscribe(a.dest, cb=on_req)
    await nc.flush(timeout=STALL_SECONDS)
    out("READY")
    await await_count(lambda: int(state["n"]), total, done, "responder")
    await nc.flush(timeout=STALL_SECONDS)
    return {"role": "respond", "count": a.count, "cpu_s": time.process_time() - state["cpu0"]}


async def _main(a: argparse.Namespace) -> dict[str, Any]:
    nc = await nats.connect(a.url, max_reconnect_attempts=0, pending_size=8 * 1024**2)
    try:
        if a.role == "produce":
            return await _produce(nc, a)
        if a.role == "consume":
            return await _consume(nc, a)
        if a.role == "request":
            return await _request(nc, a)
        if a.role == "respond":
            return await _respond(nc, a)
        raise SystemExit(f"role {a.role} is not implemented for NATS")
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    return roles_base.run_async(roles_base.parse_args("bench.roles_nats", argv), _main)


if __name__ == "__main__":
    sys.exit(main())
