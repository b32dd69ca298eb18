"""MQTT 3.1.1 roles with paho-mqtt (Mosquitto): ``python -m bench.roles_mqtt ROLE --url mqtt://...``.

MQTT has topics only: a "queue" is a topic with one subscriber. Everything is QoS 0
(Mosquitto has no synced store, so the persistent workloads are not run on it).
paho's network loop runs on its own thread (``loop_start``); callbacks arrive there.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from bench import roles_base
from bench.roles_base import STALL_SECONDS, Stopwatch, dest_names, out, wait_go


def _connect(url: str, role: str) -> Any:
    host, port = roles_base.host_port(url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"bench-{role}-{os.getpid()}", protocol=mqtt.MQTTv311)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda c, u, flags, rc, props: connected.set()
    client.connect(host, port, keepalive=600)
    client.loop_start()
    if not connected.wait(STALL_SECONDS):
        raise SystemExit("no CONNACK")
    return client


def _subscribe(client: Any, topics: list[str]) -> None:
    """SUBSCRIBE in batches and wait for every SUBACK."""
    acked = threading.Semaphore(0)
    client.on_subscribe = lambda c, u, mid, rcs, props: acked.release()
    batches = [topics[i:i + 100] for i in range(0, len(topics), 100)]
    for batch in batches:
        rc, _ = client.subscribe([(t, 0) for t in batch])
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise SystemExit(f"subscribe failed: {rc}")
    for _ in batches:
        if not acked.acquire(timeout=STALL_SECONDS):
            raise SystemExit("no SUBACK")


def _wait(event: threading.Event, progress: Any, total: int, what: str) -> None:
    last, timeout = progress(), STALL_SECONDS * 4
    while not event.wait(timeout):
        now = progress()
        if now == last:
            raise SystemExit(f"{what} stalled after {now} of {total} (QoS 0 may drop)")
        last, timeout = now, STALL_SECONDS


def _produce(client: Any, a: argparse.Namespace) -> dict[str, Any]:
    if a.mode == "persistent":
        raise SystemExit("MQTT roles run QoS 0 only")
    topics = dest_names(a)
    data = roles_base.payload(a.size)
    out("READY")
    wait_go()
    publish, n = client.publish, len(topics)
    watch = Stopwatch()
    t_first = time.monotonic_ns()
    for i in range(a.count):
        publish(topics[i % n], data, qos=0)
    t_sent = time.monotonic_ns()
    # A QoS 1 publish is acknowledged after every earlier packet has been written.
    client.publish("bench/flush", b"", qos=1).wait_for_publish(STALL_SECONDS)
    t_flushed = time.monotonic_ns()
    return {"role": "produce", "count": a.count, "t_first": t_first, "t_sent": t_sent,
            "t_flushed": t_flushed, "cpu_s": watch.cpu()}


def _consume(client: Any, a: argparse.Namespace) -> dict[str, Any]:
    done = threading.Event()
    state = {"n": 0, "t_first": 0, "t_last": 0, "cpu0": 0.0}
    total = a.count

    def on_msg(c: Any, u: Any, msg: Any) -> None:
        n = state["n"] = state["n"] + 1
        if n == 1:
            state["t_first"] = time.monotonic_ns()
            state["cpu0"] = time.process_time()
        if n == total:
            state["t_last"] = time.monotonic_ns()
            done.set()

    client.on_message = on_msg
    _subscribe(client, dest_names(a))
    out("READY")
    _wait(done, lambda: state["n"], total, "consumer")
    return {"role": "consume", "count": total, "t_first": state["t_first"],
            "t_last": state["t_last"], "cpu_s": time.process_time() - state["cpu0"],
            "prefetch": None}


def _request(client: Any, a: argparse.Namespace) -> dict[str, Any]:
    replies: queue.Queue[Any] = queue.Queue()
    client.on_message = lambda c, u, msg: replies.put(msg.payload)
    _subscribe(client, [a.reply])
    out("READY")
    wait_go()
    pad = b"x" * a.size
    publish, get, dest = client.publish, replies.get, a.dest
    lat = [0] * a.count
    perf = time.perf_counter_ns
    watch = Stopwatch()
    t_first = time.monotonic_ns()
    for i in range(a.count):
        cid = b"%d|" % i
        t0 = perf()
        publish(dest, cid + pad[len(cid):], qos=0)
        try:
            reply = get(timeout=STALL_SECONDS)
        except queue.Empty:
            raise SystemExit(f"request {i}: no reply") from None
        lat[i] = perf() - t0
        if not reply.startswith(cid):
            raise SystemExit(f"request {i}: reply {reply[:20]!r}")
    t_last = time.monotonic_ns()
    lat.sort()
    return {"role": "request", "count": a.count, "t_first": t_first, "t_last": t_last,
            "cpu_s": watch.cpu(), "latency_ns_sorted": lat}


def _respond(client: Any, a: argparse.Namespace) -> dict[str, Any]:
    done = threading.Event()
    state = {"n": 0, "cpu0": 0.0}
    pad = b"y" * a.size
    reply_topic = a.reply

    def on_req(c: Any, u: Any, msg: Any) -> None:
        cid = msg.payload.split(b"|", 1)[0] + b"|"
        c.publish(reply_topic, cid + pad[len(cid):], qos=0)
        n = state["n"] = state["n"] + 1
        if n == 1:
            state["cpu0"] = time.process_time()
        if n == a.count:
            done.set()

    client.on_message = on_req
    _subscribe(client, [a.dest])
    out("READY")
    _wait(done, lambda: state["n"], a.count, "responder")
    return {"role": "respond", "count": a.count, "cpu_s": time.process_time() - state["cpu0"]}


def main(argv: list[str] | None = None) -> int:
    a = roles_base.parse_args("bench.roles_mqtt", argv)
    client = _connect(a.url, a.role)
    try:
        roles = {"produce": _produce, "consume": _consume, "request": _request,
                 "respond": _respond}
        if a.role not in roles:
            raise SystemExit(f"role {a.role} is not implemented for MQTT")
        result = roles[a.role](client, a)
    finally:
        client.disconnect()
        client.loop_stop()
    result["loop"] = "threads (paho-mqtt)"
    return roles_base.finish(result)


if __name__ == "__main__":
    sys.exit(main())
