"""``python -m bench run [--workloads ...] [--quick] [--runs N] [--out FILE]``.

A full run writes the kept result (``bench/results/foundation.json``) and the table
in ``bench/README.md``; a ``--quick`` run goes to ``bench/results/raw/`` only unless
``--out`` names a file, so a smoke test never replaces the kept figures.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import e2e, micro_framing, report
from bench.common import (
    RAW_DIR,
    RESULTS_DIR,
    Progress,
    machine_info,
    now_iso,
    software_info,
    write_json,
)

DEFAULT_OUT = RESULTS_DIR / "foundation.json"
QUICK_COUNT, QUICK_RPC = 20_000, 2_000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the end-to-end workloads and the codec micro-benchmark")
    r.add_argument("--workloads", default=",".join(e2e.WORKLOADS),
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
                   help="clients connect to an ssl:// listener (self-made certificates)")
    r.add_argument("--out", type=Path, help=f"result JSON (default {DEFAULT_OUT})")
    r.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    r.add_argument("--no-micro", action="store_true", help="skip the codec micro-benchmark")
    r.add_argument("--profile", type=Path, metavar="DIR",
                   help="after each case, one extra profiled run (py-spy on the broker, "
                        "cProfile in the clients), files into DIR")
    return p


def run(a: argparse.Namespace) -> int:
    names = [w.strip() for w in a.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in e2e.WORKLOADS]
    if unknown:
        print(f"unknown workload(s) {', '.join(unknown)}; expected {', '.join(e2e.WORKLOADS)}",
              file=sys.stderr)
        return 2
    params = e2e.Params(
        runs=a.runs,
        count=a.count or (QUICK_COUNT if a.quick else 200_000),
        rpc_count=a.rpc_count or (QUICK_RPC if a.quick else 20_000),
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
        "benchmark": "foundation",
        "date": now_iso(),
        "machine": machine_info(tempfile.gettempdir()),  # the daemons' store dirs
        "software": software_info(),
        "parameters": {**params.as_dict(), "quick": a.quick, "warmup_runs": 1,
                       "workloads": names},
        "workloads": {},
    }
    # Top-level copies of the fields STYLE.md names, for readers that grep for them.
    result["commit"] = result["software"]["emsfast"]["commit"]
    result["python"] = result["software"]["python"]["version"]
    result["loop"] = result["software"]["loop"]
    result["build"] = result["software"]["build"]["type"]

    if not a.no_micro:
        progress.step("micro: framing codec")
        micro = micro_framing.run(frames=20_000 if a.quick else 100_000)
        result["micro"] = {"framing": micro}
        progress.done("micro: framing codec done")
        print(micro_framing.format_table(micro), file=sys.stderr)
    for name in names:
        result["workloads"][name] = e2e.run_workload(name, params, progress, profiler)

    write_json(RAW_DIR / f"run-{stamp}.json", result)
    write_json(out, _without_raw(result))
    if keep and not a.no_readme:
        report.update_readme(result)
    print(f"result: {out}", file=sys.stderr)
    for row in report.headline_rows(result):
        print(" | ".join(row))
    if profiler is not None:
        _print_profiles(a.profile)
    return 0


def _without_raw(result: dict[str, Any]) -> dict[str, Any]:
    """The kept file has runs and medians; warm-ups stay in the raw file."""
    slim = dict(result)
    slim["workloads"] = {
        name: {**wl, "cases": {cn: {k: v for k, v in c.items() if k != "warmup"}
                               for cn, c in wl["cases"].items()}}
        for name, wl in result["workloads"].items()
    }
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
    return 2


if __name__ == "__main__":
    sys.exit(main())
