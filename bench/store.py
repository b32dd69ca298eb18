"""Store benchmarks: recovery time and memory with many pending persistent messages.

``python -m bench.store [--count 1000000] [--queues 10] [--out FILE]`` fills a store
directory through ``LmdbStore`` (128-byte text messages on ``$sys.failsafe``), then
starts a real ``emsfastd`` on it and reports the time from process start until
``Server is active.`` (listeners open), the daemon's own "Recovered ... in X ms"
figure, and its RSS right after recovery. Throughput to a sync store is the
``persistent_sync`` workload of ``python -m bench run``. Reports, never asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    RAW_DIR,
    Daemon,
    machine_info,
    now_iso,
    software_info,
    write_json,
)

_RECOVERED = re.compile(r"Recovered (\d+) messages? in (\d+) destinations? in (\d+) ms")


def _blob(size: int) -> bytes:
    import emsfast
    from emsfast.consts import PERSISTENT

    msg = emsfast.TextMessage("x" * size)
    return msg.encode(PERSISTENT, 4, int(time.time() * 1000), 0, emsfast.Queue("bench.r"))


def fill(store_dir: Path, count: int, queues: int, size: int) -> float:
    """Write ``count`` messages straight into the store; return seconds taken."""
    from emsfast.store.lmdb_store import LmdbStore

    blob = _blob(size)
    loop = asyncio.new_event_loop()
    store = LmdbStore(str(store_dir))
    store.open(loop)
    began = time.perf_counter()

    async def run() -> None:
        for i in range(1, count + 1):
            store.put_message("$sys.failsafe", f"q:bench.r.{i % queues}", i, blob)
            if i % 20_000 == 0:
                await store.flush()
        await store.flush()

    loop.run_until_complete(run())
    took = time.perf_counter() - began
    store.close()
    loop.close()
    return took


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and its split: RssAnon (heap) and RssFile (mapped files: LMDB's pages)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name = line.split(":")[0]
            if name in ("VmRSS", "RssAnon", "RssFile"):
                out[name] = int(line.split()[1])
    return out


def recover(workdir: Path, runs: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(runs):
        began = time.perf_counter()
        daemon = Daemon(">\n", ">\n", workdir=str(workdir), ready_timeout=300)
        daemon.start()
        until_active = time.perf_counter() - began
        try:
            m = _RECOVERED.search(daemon.log())
            out.append({
                "start_to_active_s": round(until_active, 3),
                "recovery_ms": int(m.group(3)) if m else None,
                "recovered": int(m.group(1)) if m else None,
                **{f"{k.lower()}_mib": round(v / 1024, 1)
                   for k, v in rss_kib(daemon.pid).items()},
            })
        finally:
            daemon.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--queues", type=int, default=10)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=RAW_DIR / "store.json")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="emsfast-bench-store-") as tmp:
        workdir = Path(tmp)
        fill_s = fill(workdir / "datastore", args.count, args.queues, args.size)
        print(f"filled {args.count:,} messages in {fill_s:.1f} s "
              f"({args.count / fill_s:,.0f} msgs/s through LmdbStore)")
        runs = recover(workdir, args.runs)
        for r in runs:
            print(f"recovery: listeners open {r['start_to_active_s']:.2f} s after start; "
                  f"'Recovered' says {r['recovery_ms']} ms; RSS {r['vmrss_mib']} MiB "
                  f"(heap {r['rssanon_mib']}, mapped files {r['rssfile_mib']})")
        result = {"date": now_iso(), "machine": machine_info(workdir),
                  "software": software_info(), "params": vars(args) | {"out": str(args.out)},
                  "fill_seconds": fill_s, "runs": runs}
    write_json(args.out, result)
    print(f"result: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
