"""Failover timings of an FT pair on one host (issue 7 item 9): report, never assert.

  python -m bench.failover [--pending 0,100000] [--json FILE]

For each pending count: fill a queue with that many persistent messages through
the active, ``kill -9`` it, and time until a client walking the URL list has
consumed the first message through the backup (connect retries every 50 ms).
Then SIGSTOP of the active: time until the backup logs ``Server is active.``
(≈ ft_activation, detected from heartbeats; the hung process keeps its flock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import emsfast
from emsfast._testbase.ft_pair import FTPair
from emsfast.errors import EmsfastError

QUEUE = "bench.failover"


async def _fill(url: str, count: int) -> float:
    began = time.perf_counter()
    async with await emsfast.connect(url) as conn:
        producer = conn.session().producer(emsfast.Queue(QUEUE), window=5000)
        body = emsfast.TextMessage("x" * 100)
        for _ in range(count):
            await producer.send_async(body)
        await producer.flush()
    return time.perf_counter() - began


async def _first_message(urls: str, deadline: float) -> float:
    """Connect through the URL list (retrying) and receive one message."""
    while True:
        try:
            conn = await emsfast.connect(urls, connect_attempt_count=1,
                                         handshake_timeout=1.0)
        except (EmsfastError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        async with conn:
            consumer = conn.session().consumer(emsfast.Queue(QUEUE))
            msg = await consumer.receive(max(1.0, deadline - time.monotonic()))
            if msg is None:
                raise RuntimeError("no message through the backup")
            return time.monotonic()


def kill9_takeover(root: Path, pending: int) -> dict[str, Any]:
    pair = FTPair(root, heartbeat=1, activation=3)
    try:
        a = pair.start_active("a")
        b = pair.start_standby("b")
        fill = asyncio.run(_fill(pair.url("a"), max(pending, 1)))
        killed = time.monotonic()
        a.kill()
        got = asyncio.run(_first_message(pair.urls, killed + 600))
        line = b.wait_for_line("Recovered ", 60)
        return {"pending": pending, "fill_seconds": round(fill, 2),
                "kill_to_first_message_seconds": round(got - killed, 3),
                "recovery_log": line.strip().split(" ", 2)[-1]}
    finally:
        pair.cleanup()


def sigstop_takeover(root: Path, activation: int = 3) -> dict[str, Any]:
    pair = FTPair(root, heartbeat=1, activation=activation)
    try:
        a = pair.start_active("a")
        b = pair.start_standby("b")
        stopped = time.monotonic()
        os.kill(a.pid, signal.SIGSTOP)
        b.wait_for_line("Server is active.", 60)
        took = time.monotonic() - stopped
        os.kill(a.pid, signal.SIGCONT)
        rc = a.wait(30)
        return {"ft_heartbeat": 1, "ft_activation": activation,
                "sigstop_to_active_seconds": round(took, 3), "woken_old_active_exit": rc}
    finally:
        pair.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.failover", description=__doc__.split("\n")[0])
    p.add_argument("--pending", default="0,100000",
                   help="comma-separated pending counts (default 0,100000)")
    p.add_argument("--json", metavar="FILE", help="also write the results here")
    args = p.parse_args(argv)
    results: dict[str, Any] = {"kill9": [], "sigstop": None}
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        for i, n in enumerate(int(x) for x in args.pending.split(",")):
            r = kill9_takeover(Path(tmp) / f"k{i}", n)
            results["kill9"].append(r)
            print(f"kill -9 with {n:>9,} pending: first message through the backup after "
                  f"{r['kill_to_first_message_seconds']:.3f} s (fill {r['fill_seconds']} s; "
                  f"{r['recovery_log']})", flush=True)
        r = sigstop_takeover(Path(tmp) / "stop")
        results["sigstop"] = r
        print(f"SIGSTOP (heartbeat 1 s, activation 3 s): backup active after "
              f"{r['sigstop_to_active_seconds']:.3f} s; woken old active exited "
              f"{r['woken_old_active_exit']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
