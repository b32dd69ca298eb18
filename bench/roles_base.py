"""What every roles module shares: arguments, the READY / GO / JSON lines, CPU time.

A roles module (``bench/roles.py`` for emsfast, ``roles_nats.py``, ...) is run as
``python -m MODULE ROLE --url URL ...`` by ``bench/e2e.py``:

- ``READY`` on stdout once connected and subscribed;
- senders then block until ``GO`` arrives on stdin, so every consumer is in place;
- one final JSON line with the role's measurements; errors go to stderr, exit 1.

Times are ``time.monotonic_ns()``: CLOCK_MONOTONIC is one clock for every process on
the machine, so a producer's first send and a consumer's last receive can be subtracted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

# A receive that waits this long means the broker lost or stalled messages.
STALL_SECONDS = 30.0
# Consumers acknowledge cumulatively once per this many messages where the protocol
# has cumulative acks (AMQP multiple=true, STOMP ack:client).
ACK_EVERY = 100
ROLES = ("produce", "consume", "pair", "request", "respond")


def out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def wait_go() -> None:
    # Blocking is fine here: nothing may happen until the run starts.
    line = sys.stdin.readline()
    if line.strip() != "GO":
        raise SystemExit(f"expected GO on stdin, got {line!r}")


class Stopwatch:
    """CPU time of this process (all its threads) over the measured section."""

    def __init__(self) -> None:
        self.cpu0 = time.process_time()

    def cpu(self) -> float:
        return time.process_time() - self.cpu0


def dest_names(a: argparse.Namespace) -> list[str]:
    """``--dests N`` spreads a run over N destinations ``DEST.0`` .. ``DEST.N-1``."""
    if a.dests <= 1:
        return [a.dest]
    return [f"{a.dest}.{i}" for i in range(a.dests)]


def payload(size: int) -> bytes:
    return b"x" * size


def parse_args(prog: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"python -m {prog}")
    p.add_argument("role", choices=ROLES)
    p.add_argument("--url", required=True)
    p.add_argument("--kind", choices=["queue", "topic"], default="queue")
    p.add_argument("--dest", required=True)
    p.add_argument("--dests", type=int, default=1, help="spread over N destinations")
    p.add_argument("--reply", default="bench.rpc.reply", help="reply queue (request role)")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--body", choices=["text", "bytes"], default="text")
    p.add_argument("--mode", choices=["non_persistent", "persistent"], default="non_persistent")
    p.add_argument("--ack", default="auto")
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--ssl-trusted", default="", help="CA file, for ssl:// URLs (emsfast)")
    return p.parse_args(argv)


def host_port(url: str) -> tuple[str, int]:
    hostport = url.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    return host, int(port)


def run_async(a: argparse.Namespace,
              main: Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]) -> int:
    factory = None
    if a.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(main(a))
    result["loop"] = a.loop
    out(json.dumps(result))
    return 0


def finish(result: dict[str, Any]) -> int:
    out(json.dumps(result))
    return 0


async def await_count(progress: Callable[[], int], total: int, done: asyncio.Event,
                      what: str, first_timeout: float = STALL_SECONDS * 4) -> None:
    """Wait until ``done`` is set; fail if ``progress()`` stops moving for a stall."""
    last, timeout = progress(), first_timeout
    while not done.is_set():
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            now = progress()
            if now == last:
                raise SystemExit(f"{what} stalled after {now} of {total}") from None
            last, timeout = now, STALL_SECONDS
