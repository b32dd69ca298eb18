"""STOMP 1.2 roles with stomp.py (ActiveMQ): ``python -m bench.roles_stomp ROLE --url stomp://...``.

stomp.py is threaded: frames arrive on its receiver thread, which calls the listener.
Queues are ``/queue/NAME``, topics ``/topic/NAME``. ``--mode persistent`` sends with
``persistent:true`` and a ``receipt`` header, ``--window`` receipts outstanding.
Consumers subscribe with ``ack:client`` (cumulative) and ``activemq.prefetchSize``
1,000, and ACK once per ``ACK_EVERY`` messages.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from typing import Any

import stomp

from bench import roles_base
from bench.roles_base import ACK_EVERY, STALL_SECONDS, Stopwatch, dest_names, out, wait_go

PREFETCH = 1000


def _path(kind: str, name: str) -> str:
    return f"/{'topic' if kind == 'topic' else 'queue'}/{name}"


class _Listener(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.on_msg: Any = None
        self.on_rcpt: Any = None

    def on_error(self, frame: Any) -> None:
        self.errors.append(f"{frame.headers.get('message')}: {frame.body[:200]}")

    def on_message(self, frame: Any) -> None:
        if self.on_msg is not None:
            self.on_msg(frame)

    def on_receipt(self, frame: Any) -> None:
        if self.on_rcpt is not None:
            self.on_rcpt(frame)


def _connect(url: str) -> tuple[Any, _Listener]:
    host, port = roles_base.host_port(url)
    conn = stomp.Connection12([(host, port)], heartbeats=(0, 0), auto_content_length=True)
    listener = _Listener()
    conn.set_listener("bench", listener)
    conn.connect(wait=True, headers={"client-id": f"bench-{os.getpid()}"})
    return conn, listener


def _wait(event: threading.Event, progress: Any, total: int, what: str,
          listener: _Listener) -> None:
    last, timeout = progress(), STALL_SECONDS * 4
    while not event.wait(timeout):
        if listener.errors:
            raise SystemExit(f"{what}: broker error {listener.errors[0]}")
        now = progress()
        if now == last:
            raise SystemExit(f"{what} stalled after {now} of {total}")
        last, timeout = now, STALL_SECONDS
    if listener.errors:
        raise SystemExit(f"{what}: broker error {listener.errors[0]}")


def _produce(conn: Any, listener: _Listener, a: argparse.Namespace) -> dict[str, Any]:
    paths = [_path(a.kind, d) for d in dest_names(a)]
    body = "x" * a.size
    persistent = a.mode == "persistent"
    out("READY")
    wait_go()
    send, n = conn.send, len(paths)
    watch = Stopwatch()
    t_first = time.monotonic_ns()
    if persistent:
        window = threading.Semaphore(a.window)
        receipts = {"n": 0}
        all_done = threading.Event()
        total = a.count

        def on_rcpt(frame: Any) -> None:
            window.release()
            receipts["n"] += 1
            if receipts["n"] == total:
                all_done.set()

        listener.on_rcpt = on_rcpt
        for i in range(a.count):
            window.acquire()
            send(paths[i % n], body, headers={"persistent": "true", "receipt": str(i)})
        t_sent = time.monotonic_ns()
        _wait(all_done, lambda: receipts["n"], total, "receipts", listener)
    else:
        headers = {"persistent": "false"}
        for i in range(a.count):
            send(paths[i % n], body, headers=headers)
        t_sent = time.monotonic_ns()
    t_flushed = time.monotonic_ns()
    return {"role": "produce", "count": a.count, "t_first": t_first, "t_sent": t_sent,
            "t_flushed": t_flushed, "cpu_s": watch.cpu()}


def _consume(conn: Any, listener: _Listener, a: argparse.Namespace) -> dict[str, Any]:
    done = threading.Event()
    state = {"n": 0, "t_first": 0, "t_last": 0, "cpu0": 0.0}
    total = a.count
    ack = conn.ack

    def on_msg(frame: Any) -> None:
        n = state["n"] = state["n"] + 1
        if n == 1:
            state["t_first"] = time.monotonic_ns()
            state["cpu0"] = time.process_time()
        if n % ACK_EVERY == 0 or n == total:
            ack(frame.headers["ack"])
        if n == total:
            state["t_last"] = time.monotonic_ns()
            done.set()

    listener.on_msg = on_msg
    for i, d in enumerate(dest_names(a)):
        conn.subscribe(_path(a.kind, d), id=str(i), ack="client",
                       headers={"activemq.prefetchSize": str(PREFETCH)})
    # A receipt on a last frame: every SUBSCRIBE before it has been processed.
    _round_trip(conn, listener)
    out("READY")
    _wait(done, lambda: state["n"], total, "consumer", listener)
    return {"role": "consume", "count": total, "t_first": state["t_first"],
            "t_last": state["t_last"], "cpu_s": time.process_time() - state["cpu0"],
            "prefetch": PREFETCH}


def _round_trip(conn: Any, listener: _Listener) -> None:
    got = threading.Event()
    before = listener.on_rcpt
    listener.on_rcpt = lambda frame: got.set()
    conn.send_frame("SEND", {"destination": "/queue/bench.sync", "receipt": "sync",
                             "persistent": "false"}, "")
    if not got.wait(STALL_SECONDS):
        raise SystemExit("no receipt from the broker")
    listener.on_rcpt = before


def _request(conn: Any, listener: _Listener, a: argparse.Namespace) -> dict[str, Any]:
    replies: queue.Queue[Any] = queue.Queue()
    listener.on_msg = replies.put
    reply_path = _path("queue", a.reply)
    conn.subscribe(reply_path, id="reply", ack="auto",
                   headers={"activemq.prefetchSize": str(PREFETCH)})
    _round_trip(conn, listener)
    out("READY")
    wait_go()
    body = "x" * a.size
    send, get, dest = conn.send, replies.get, _path("queue", a.dest)
    lat = [0] * a.count
    perf = time.perf_counter_ns
    watch = Stopwatch()
    t_first = time.monotonic_ns()
    for i in range(a.count):
        cid = str(i)
        t0 = perf()
        send(dest, body, headers={"reply-to": reply_path, "correlation-id": cid,
                                  "persistent": "false"})
        try:
            reply = get(timeout=STALL_SECONDS)
        except queue.Empty:
            raise SystemExit(f"request {i}: no reply") from None
        lat[i] = perf() - t0
        if reply.headers.get("correlation-id") != cid:
            raise SystemExit(f"request {i}: reply {reply.headers.get('correlation-id')!r}")
    t_last = time.monotonic_ns()
    lat.sort()
    return {"role": "request", "count": a.count, "t_first": t_first, "t_last": t_last,
            "cpu_s": watch.cpu(), "latency_ns_sorted": lat}


def _respond(conn: Any, listener: _Listener, a: argparse.Namespace) -> dict[str, Any]:
    body = "x" * a.size
    done = threading.Event()
    state = {"n": 0, "cpu0": 0.0}
    send = conn.send

    def on_req(frame: Any) -> None:
        send(frame.headers["reply-to"], body,
             headers={"correlation-id": frame.headers.get("correlation-id", ""),
                      "persistent": "false"})
        n = state["n"] = state["n"] + 1
        if n == 1:
            state["cpu0"] = time.process_time()
        if n == a.count:
            done.set()

    listener.on_msg = on_req
    conn.subscribe(_path("queue", a.dest), id="req", ack="auto",
                   headers={"activemq.prefetchSize": str(PREFETCH)})
    _round_trip(conn, listener)
    out("READY")
    _wait(done, lambda: state["n"], a.count, "responder", listener)
    return {"role": "respond", "count": a.count, "cpu_s": time.process_time() - state["cpu0"]}


def main(argv: list[str] | None = None) -> int:
    a = roles_base.parse_args("bench.roles_stomp", argv)
    conn, listener = _connect(a.url)
    try:
        roles = {"produce": _produce, "consume": _consume, "request": _request,
                 "respond": _respond}
        if a.role not in roles:
            raise SystemExit(f"role {a.role} is not implemented for STOMP")
        result = roles[a.role](conn, listener, a)
    finally:
        conn.disconnect()
    result["loop"] = "threads (stomp.py)"
    return roles_base.finish(result)


if __name__ == "__main__":
    sys.exit(main())
