"""The floor under ``rpc``: a 128-byte ping-pong between two Python processes over
loopback TCP with blocking sockets and no broker.

A request/reply through a broker crosses loopback four times (requester → broker →
responder → broker → requester), i.e. two of these round trips, so ``2 × p50`` here
is what no broker on this machine can beat with Python clients.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import Any

from bench.common import child_env, percentile


def _echo() -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    print(srv.getsockname()[1], flush=True)
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(65536):
        conn.sendall(data)


def _recv_exact(sock: socket.socket, n: int) -> None:
    while n:
        got = sock.recv(n)
        if not got:
            raise ConnectionError("echo process closed the connection")
        n -= len(got)


def loopback_rtt(count: int = 10_000, size: int = 128) -> dict[str, Any]:
    """Unpinned, both ends on one core, and on two cores: on a VM a wake-up across
    cores costs an inter-processor interrupt, which is most of a round trip."""
    out: dict[str, Any] = {
        "description": "128-byte ping-pong between two Python processes over loopback TCP, "
                       "blocking sockets, no broker",
        "round_trips": count,
    }
    ncpu = len(os.sched_getaffinity(0))
    placements: dict[str, tuple[set[int], set[int]] | None] = {"unpinned": None}
    if ncpu >= 2:
        placements["same_core"] = ({0}, {0})
        placements["cross_core"] = ({0}, {1})
    for name, cpus in placements.items():
        out[name] = _ping_pong(count, size, cpus)
    out["p50_us"] = out["unpinned"]["p50_us"]
    return out


def _ping_pong(count: int, size: int, cpus: tuple[set[int], set[int]] | None) -> dict[str, Any]:
    mine = os.sched_getaffinity(0)
    proc = subprocess.Popen([sys.executable, "-m", "bench.baseline"], env=child_env(),
                            stdout=subprocess.PIPE, text=True)
    try:
        if cpus is not None:
            os.sched_setaffinity(0, cpus[0])
            os.sched_setaffinity(proc.pid, cpus[1])
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            payload = b"x" * size
            perf = time.perf_counter_ns
            for _ in range(count // 10):  # warm-up
                sock.sendall(payload)
                _recv_exact(sock, size)
            lat = [0] * count
            for i in range(count):
                t0 = perf()
                sock.sendall(payload)
                _recv_exact(sock, size)
                lat[i] = perf() - t0
    finally:
        os.sched_setaffinity(0, mine)
        proc.kill()
        proc.wait()
    lat.sort()
    return {"p50_us": percentile(lat, 50) / 1e3,
            "p99_us": percentile(lat, 99) / 1e3, "p99_9_us": percentile(lat, 99.9) / 1e3}


if __name__ == "__main__":
    _echo()
