"""``python -m bench run [--brokers ...] [--workloads ...] [--quick] [--runs N] [--out FILE]``;
``python -m bench chaos ...`` and ``python -m bench soak ...`` (bench/chaos.py).

A full run writes the kept result (``bench/results/compare.json``), its chart
(``compare.png``) and the tables in ``bench/README.md``; a ``--quick`` run goes to
``bench/results/raw/`` only unless ``--out`` names a file, so a smoke test never
replaces the kept figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import chaos, chart, e2e, micro_framing, report
from bench.common import (
    RAW_DIR,
    RESULTS_DIR,
    Progress,
    load_average,
    machine_info,
    now_iso,
    software_info,
    wait_for_quiet,
    write_json,
)
from bench.peers import PEERS

DEFAULT_OUT = RESULTS_DIR / "compare.json"
BROKERS = ("emsfast", *PEERS)
QUICK_COUNT, QUICK_RPC = 20_000, 2_000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the end-to-end workloads and the codec micro-benchmark")
    r.add_argument("--brokers", default=",".join(BROKERS),
                   help=f"comma-separated subset of {','.join(BROKERS)}")
    r.add_argument("--workloads", default=",".join(e2e.DEFAULT_WORKLOADS),
                   help=f"comma-separated subset of {','.join(e2e.WORKLOADS)}")
    r.add_argument("--quick", action="store_true",
                   help=f"{QUICK_COUNT:,} messages / {QUICK_RPC:,} round trips per run")
    r.add_argument("--runs", type=int, default=3, help="measured runs per case (after 1 warm-up)")
    r.add_argument("--count", type=int, help="messages per throughput run (default 200,000)")
    r.add_argument("--rpc-count", type=int, help="round trips per rpc run (default 20,000)")
    r.add_argument("--body", choices=["text", "bytes"], default="text")
    r.add_argument("--ack", default="auto", help="consumer ack mode (auto, dups_ok, none, ...)")
    r.add_argument("--prefetch", type=int, default=1000, help="prefetch of bench.> destinations")
    r.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                   help="event loop of the client processes")
    r.add_argument("--tls", action="store_true",
                   help="emsfast clients connect to an ssl:// listener (self-made certificates)")
    r.add_argument("--out", type=Path, help=f"result JSON (default {DEFAULT_OUT})")
    r.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    r.add_argument("--no-micro", action="store_true", help="skip the codec micro-benchmark")
    r.add_argument("--max-load", type=float, default=0.6,
                   help="wait until the 1-minute load average is below this (0: do not wait)")
    r.add_argument("--max-wait", type=float, default=600.0,
                   help="give up waiting for a quiet machine after this many seconds")
    r.add_argument("--profile", type=Path, metavar="DIR",
                   help="after each case, one extra profiled run (py-spy on the broker, "
                        "cProfile in the clients), files into DIR")
    chaos.build_parser(sub)
    return p


def run(a: argparse.Namespace) -> int:
    names = [w.strip() for w in a.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in e2e.WORKLOADS]
    if unknown:
        print(f"unknown workload(s) {', '.join(unknown)}; expected {', '.join(e2e.WORKLOADS)}",
              file=sys.stderr)
        return 2
    brokers = [b.strip() for b in a.brokers.split(",") if b.strip()]
    if [b for b in brokers if b not in BROKERS]:
        print(f"unknown broker(s) in {a.brokers}; expected {', '.join(BROKERS)}",
              file=sys.stderr)
        return 2
    div = 10 if a.quick else 1
    params = e2e.Params(
        runs=a.runs,
        count=a.count or 200_000 // div,
        rpc_count=a.rpc_count or 20_000 // div,
        backlog_count=100_000 // div, large_count=20_000 // div,
        body=a.body, ack=a.ack, prefetch=a.prefetch, loop=a.loop, tls=a.tls)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out: Path = a.out or (RAW_DIR / f"quick-{stamp}.json" if a.quick else DEFAULT_OUT)
    keep = a.out is not None or not a.quick
    progress = Progress()
    profiler: Any = None
    if a.profile is not None:
        from bench.profiling import Profiler

        profiler = Profiler(a.profile)

    result: dict[str, Any] = {
        "benchmark": "compare",
        "date": now_iso(),
        "machine": machine_info(tempfile.gettempdir()),  # the daemons' store dirs
        "software": software_info(),
        "parameters": {**params.as_dict(), "quick": a.quick, "warmup_runs": 1,
                       "workloads": names, "brokers": brokers},
        "brokers": {},
    }
    # Top-level copies of the fields STYLE.md names, for readers that grep for them.
    result["commit"] = result["software"]["emsfast"]["commit"]
    result["python"] = result["software"]["python"]["version"]
    result["loop"] = result["software"]["loop"]
    result["build"] = result["software"]["build"]["type"]

    if a.max_load > 0:
        result["load_average"] = wait_for_quiet(a.max_load, a.max_wait, progress)
    if not a.no_micro:
        progress.step("micro: framing codec")
        micro = micro_framing.run(frames=20_000 if a.quick else 100_000)
        result["micro"] = {"framing": micro}
        progress.done("micro: framing codec done")
        print(micro_framing.format_table(micro), file=sys.stderr)
    for kind in brokers:
        result["brokers"][kind] = run_broker(kind, names, params, progress, profiler)
    result["load_average"] = {**result.get("load_average", {}),
                              "at_end": list(load_average())}

    write_json(RAW_DIR / f"run-{stamp}.json", result)
    slim = _without_raw(result)
    write_json(out, slim)
    chart_path = out.with_suffix(".png")
    try:
        chart.draw(slim, chart_path)
        print(f"chart: {chart_path}", file=sys.stderr)
    except ImportError as exc:
        print(f"no chart ({exc}; bash bench/setup.sh installs matplotlib)", file=sys.stderr)
    if keep and not a.no_readme:
        report.update_readme(slim)
    print(f"result: {out}", file=sys.stderr)
    for row in report.headline_rows(slim):
        print(" | ".join(row))
    if profiler is not None:
        _print_profiles(a.profile)
    return 0


def run_broker(kind: str, names: list[str], params: e2e.Params, progress: Progress,
               profiler: Any) -> dict[str, Any]:
    """One broker's workloads; a peer that is missing or does not start is skipped."""
    peer = PEERS.get(kind)
    out: dict[str, Any] = (peer.describe() if peer is not None else
                           {"kind": "emsfast", "client": "emsfast (asyncio)",
                            "settings": EMSFAST_SETTINGS})
    why = peer.missing() if peer is not None else None
    if why is not None:
        progress.done(f"{kind}: skipped: {why}")
        return {**out, "skipped": why}
    out["workloads"] = {}
    for name in names:
        try:
            out["workloads"][name] = e2e.run_workload(
                name, params, progress, profiler if kind == "emsfast" else None, kind)
        except Exception as exc:  # the broker did not start: recorded, next workload
            progress.done(f"{kind} {name}: FAILED: {str(exc).splitlines()[0]}")
            out["workloads"][name] = {"description": e2e.DESCRIPTIONS[name], "cases": {},
                                      "error": str(exc)[-2000:]}
    return out


EMSFAST_SETTINGS = {
    "queue": "NON_PERSISTENT TextMessages, consumer ack mode auto (acks batched per loop "
             "turn), prefetch 1,000",
    "persistent": "PERSISTENT sends to queues with store=$sys.failsafe (the sync LMDB "
                  "store: fsync'd, group commit, before the confirm); send_async with "
                  "1,000 confirms outstanding",
    "fanout": "a topic with 4 subscribers",
    "rpc": "requests on a queue, replies on a second queue named in reply_to",
}


def _without_raw(result: dict[str, Any]) -> dict[str, Any]:
    """The kept file has runs and medians; warm-ups stay in the raw file."""
    slim = dict(result)
    slim["brokers"] = {}
    for kind, b in result["brokers"].items():
        wls = {name: {**wl, "cases": {cn: {k: v for k, v in c.items() if k != "warmup"}
                                      for cn, c in wl["cases"].items()}}
               for name, wl in b.get("workloads", {}).items()}
        slim["brokers"][kind] = {**b, "workloads": wls} if "workloads" in b else dict(b)
    return slim


def _print_profiles(directory: Path) -> None:
    from bench.profiling import top_costs

    for f in sorted(directory.glob("broker-*.txt")):
        costs = top_costs(f)
        print(f"\n== {f.name}: busy {costs['busy_share']:.0%} of samples; "
              "share of busy samples (self | inclusive)", file=sys.stderr)
        for (s_name, s_share), (i_name, i_share) in zip(costs["self"], costs["inclusive"],
                                                         strict=False):
            print(f"{s_share:6.1%}  {s_name[:60]:<60} | {i_share:6.1%}  {i_name[:60]}",
                  file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.command == "run":
        return run(a)
    if a.command in ("chaos", "soak"):
        return chaos.main(a)
    return 2


if __name__ == "__main__":
    sys.exit(main())
