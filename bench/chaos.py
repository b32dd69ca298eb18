"""``python -m bench chaos``: faults under load on an FT pair, then a verdict.

  python -m bench chaos --faults kill,stop,partition,disk-full --duration 60 --seed N
  python -m bench soak --duration 3600          # no faults; RSS and fds over time

An FT pair on one host (bench/chaos_cluster.py) serves a steady persistent load
(bench/chaos_load.py: producers on two queues and a topic, a consumer per queue,
two durable subscribers). Faults are drawn from a seeded generator: ``kill`` (kill -9
of the active), ``stop`` (SIGSTOP until the backup is active, then SIGCONT: the old
active must fence itself), ``partition`` (the FT link blackholed past
ft_activation, or every client link cut), ``disk-full`` (the store's tmpfs filled
for a while; needs root). After the faults the pair is healed, the producers stop,
the consumers drain, and bench/chaos_check.py judges: nothing confirmed lost,
nothing unexpected, no unflagged duplicate, per-producer order kept, never two
actives. Exit 0 clean, 1 on a violation (replay with the printed seed), 2 on a
usage or setup error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.chaos_check import Violation, check_messages, check_ownership, summarize
from bench.chaos_cluster import (
    FAULTS,
    ROLES,
    SELF_TEST_FAULTS,
    STOP_AFTER_TAKEOVER,
    Cluster,
    ClusterError,
)
from bench.chaos_load import Load
from bench.common import RAW_DIR, machine_info, now_iso, software_info

# Relative odds of each fault kind; "partition" is two kinds.
WEIGHTS = {"kill": 3, "stop": 2, "partition-ft": 1, "partition-clients": 1, "disk-full": 1,
           "wipe": 1}
DRAIN_QUIET = 2.0       # after the last missing message arrives, wait this long for late ones
DRAIN_GIVE_UP = 20.0    # no delivery at all for this long: the rest is lost
DRAIN_LIMIT = 180.0
SAMPLE_EVERY = 5.0      # seconds between RSS/fd samples


def fault_kinds(faults: list[str]) -> list[str]:
    kinds = []
    for f in faults:
        kinds += ["partition-ft", "partition-clients"] if f == "partition" else [f]
    return kinds


def hold_seconds(kind: str, activation: int) -> float:
    # The FT link must stay dark past ft_activation for the standby to act.
    return {"partition-ft": activation + 2.0, "partition-clients": 1.0,
            "disk-full": 2.0}.get(kind, 0.0)


class Resources:
    """RSS and open file descriptors of the pair's members, sampled over time."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.samples: list[dict[str, Any]] = []
        self.began = time.monotonic()

    async def run(self, every: float) -> None:
        while True:
            self.take()
            await asyncio.sleep(every)

    def take(self) -> None:
        row: dict[str, Any] = {"t": round(time.monotonic() - self.began, 1)}
        for role in ROLES:
            proc = self.cluster.pair.members.get(role)
            if proc is None or proc.returncode is not None:
                continue
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                rss = next(int(line.split()[1]) for line in status.splitlines()
                           if line.startswith("VmRSS:"))
                fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
            except (OSError, StopIteration):
                continue
            row[role] = {"run": self.cluster.runs[role], "rss_kib": rss, "fds": fds,
                         "active": role == self.cluster.active}
        self.samples.append(row)


def growth(samples: list[dict[str, Any]], warmup: float) -> dict[str, Any]:
    """Growth of the active member's RSS and fds after warm-up: the mean of the last
    quarter of the samples against the first quarter (one incarnation only)."""
    series = [(s["t"], s[r]) for s in samples if s["t"] >= warmup
              for r in ROLES if r in s and s[r]["active"]]
    if len(series) < 8:
        return {"checked": False, "why": f"only {len(series)} samples after warm-up"}
    runs = {v["run"] for _, v in series}
    if len(runs) > 1:
        return {"checked": False, "why": "the active member restarted (faults): no trend"}
    q = len(series) // 4
    first, last = series[:q], series[-q:]

    def mean(part: list[tuple[float, dict[str, Any]]], key: str) -> float:
        return sum(v[key] for _, v in part) / len(part)

    rss0, rss1 = mean(first, "rss_kib"), mean(last, "rss_kib")
    fd0, fd1 = mean(first, "fds"), mean(last, "fds")
    return {"checked": True, "rss_kib_first": round(rss0), "rss_kib_last": round(rss1),
            "rss_growth": round(rss1 / rss0 - 1, 4), "fds_first": round(fd0, 1),
            "fds_last": round(fd1, 1)}


def growth_violations(g: dict[str, Any]) -> list[Violation]:
    # 10% and 16 MiB: allocator noise and LMDB's page cache stay under both.
    out = []
    if g.get("checked"):
        grown = g["rss_kib_last"] - g["rss_kib_first"]
        if g["rss_growth"] > 0.10 and grown > 16 * 1024:
            out.append(Violation("rss_growth", None, 1, [g],
                                 f"the active member's RSS grew from {g['rss_kib_first']} KiB "
                                 f"to {g['rss_kib_last']} KiB after warm-up"))
        if g["fds_last"] - g["fds_first"] > 8:
            out.append(Violation("fd_growth", None, 1, [g],
                                 f"the active member's open files grew from {g['fds_first']} "
                                 f"to {g['fds_last']} after warm-up"))
    return out


async def _drain(load: Load, progress: bool) -> dict[str, Any]:
    began = time.monotonic()
    complete_at: float | None = None
    while time.monotonic() - began < DRAIN_LIMIT:
        await asyncio.sleep(0.25)
        quiet = time.monotonic() - load.last_delivery
        if load.missing() == 0:
            complete_at = complete_at or time.monotonic()
            if quiet >= DRAIN_QUIET:
                break
        elif quiet >= DRAIN_GIVE_UP:
            break
    missing = load.missing()
    if progress:
        print(f"drained in {time.monotonic() - began:.1f} s; {missing} confirmed "
              "message(s) still missing", file=sys.stderr, flush=True)
    return {"seconds": round(time.monotonic() - began, 2), "missing_at_end": missing}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    kinds = fault_kinds(args.faults)
    weights = [args.weights.get(k, WEIGHTS[k]) for k in kinds]
    root = Path(tempfile.mkdtemp(prefix="emsfast-chaos-", dir=args.workdir))
    load: Load | None = None
    cluster = Cluster(root, disk_full="disk-full" in kinds, activation=args.activation,
                      confirmed=lambda: _confirmed(load))
    result: dict[str, Any] = {"events": [], "violations": []}
    violations: list[Violation] = []
    resources = Resources(cluster)
    sampler: asyncio.Task[None] | None = None
    failovers = 0
    try:
        await cluster.start()
        load = Load(cluster.urls, rate=args.rate)
        await load.start()
        sampler = asyncio.ensure_future(resources.run(args.sample_every))
        began = time.monotonic()
        last_report = began
        while time.monotonic() - began < args.duration:
            if args.failovers and failovers >= args.failovers:
                break
            await asyncio.sleep(rng.uniform(0.5, 1.5) * args.gap)
            if not kinds:
                if args.progress and time.monotonic() - last_report >= 60:
                    last_report = time.monotonic()
                    _progress(began, load, failovers, resources)
                continue
            kind = rng.choices(kinds, weights)[0]
            before = _outcomes(load)
            if kind == "wipe":      # a backlog to lose: the checker must see it go
                load.receiving.clear()
                await asyncio.sleep(1.0)
            try:
                event = await cluster.inject(kind, hold_seconds(kind, args.activation))
                load.receiving.set()
            except ClusterError as exc:
                violations.append(Violation(
                    "unavailable", None, 1, [str(exc)[-3000:]],
                    f"the pair did not recover from {kind}: {str(exc).splitlines()[0]}"))
                break
            failovers += bool(event["failover"])
            if event.get("confirmed_while_hung") == 0:
                violations.append(Violation(
                    "stuck", None, 1, [event],
                    f"no send was confirmed in the {STOP_AFTER_TAKEOVER:g} s after the backup "
                    f"took over from the hung (SIGSTOPped) {event['victim']}: clients stayed "
                    "with the hung server"))
            # What the clients saw of this fault: sends refused or left uncertain.
            after = _outcomes(load)
            event.update(sent=load.sent, received=load.received,
                         refused=after[0] - before[0], uncertain=after[1] - before[1])
            result["events"].append(event)
            if args.progress:
                took = event.get("takeover_seconds")
                print(f"{time.monotonic() - began:7.1f} s  {kind:<17} "
                      f"{f'takeover {took:.2f} s' if took is not None else '':<16} "
                      f"failovers {failovers:>4}  sent {load.sent:>8,}  "
                      f"received {load.received:>8,}", file=sys.stderr, flush=True)
        # Lost is judged only after a drain; a pair that cannot be healed has none.
        try:
            await cluster.heal()
            await load.stop_sending()
            result["drain"] = await _drain(load, args.progress)
        except ClusterError as exc:
            result["drain"] = {"skipped": str(exc).splitlines()[0]}
    finally:
        if sampler is not None:
            sampler.cancel()
        # An hour's verdict must not be lost to a failure while tearing down.
        try:
            if load is not None:
                await asyncio.wait_for(load.stop(), 120)
        except TimeoutError:
            result["teardown_error"] = "the load's clients did not stop within 120 s"
        finally:
            try:
                await asyncio.wait_for(cluster.close(), 120)
            except Exception as exc:    # TimeoutError included: judge what we have
                result["teardown_error"] = f"{type(exc).__name__}: {exc}"
    assert load is not None
    found = check_messages(load.producers, load.consumers.values())
    if "skipped" in result.get("drain", {"skipped": "no drain"}):
        # Not drained: what is still in the store is not lost, only undelivered.
        found = [v for v in found if v.kind != "lost"]
    violations += found
    violations += [Violation("load_stopped", None, 1, [why],
                             f"client {name} stopped before the end of the run: {why}")
                   for name, why in sorted(load.stopped.items())]
    owners = cluster.ownerships()
    violations += check_ownership(owners, cluster.both_ready)
    confirmed = sum(len(p.confirmed) for p in load.producers.values())
    if confirmed == 0:
        violations.append(Violation("idle", None, 1, [],
                                    "no send was confirmed: the load never ran"))
    g = growth(resources.samples, args.warmup)
    if args.command == "soak":
        violations += growth_violations(g)
    result.update({
        "failovers": failovers,
        "ownerships": [vars(o) for o in owners],
        "ready_samples": cluster.samples,
        "ready_sampler_errors": cluster.sampler_errors[:20],
        "load": {**summarize(load.producers, load.consumers.values()),
                 "reconnects": load.reconnects, "client_errors": load.errors},
        "resources": {"samples": resources.samples, "growth": g},
        "violations": [v.as_dict() for v in violations],
        "members": [{k: v for k, v in e.items() if k != "log"} for e in cluster.logs],
    })
    if violations:
        # The last incarnations only: a long run has a thousand.
        result["member_logs"] = [{**e, "log": e["log"][-20000:]} for e in cluster.logs[-12:]]
    shutil.rmtree(root, ignore_errors=True)
    return result


def _confirmed(load: Load | None) -> int:
    return 0 if load is None else sum(len(p.confirmed) for p in load.producers.values())


def _outcomes(load: Load) -> tuple[int, int]:
    return (sum(len(p.refused) for p in load.producers.values()),
            sum(len(p.uncertain) for p in load.producers.values()))


def _progress(began: float, load: Load, failovers: int, resources: Resources) -> None:
    last = resources.samples[-1] if resources.samples else {}
    mem = ", ".join(f"{r} rss {v['rss_kib'] // 1024} MiB fds {v['fds']}"
                    for r, v in last.items() if r in ROLES)
    print(f"{time.monotonic() - began:7.1f} s  sent {load.sent:>9,}  received "
          f"{load.received:>9,}  {mem}", file=sys.stderr, flush=True)


def _weights(text: str) -> dict[str, int]:
    out = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        kind, _, n = item.partition("=")
        if kind not in WEIGHTS or not n.isdigit():
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected KIND=N with KIND one of {', '.join(WEIGHTS)}")
        out[kind] = int(n)
    return out


def build_parser(sub: Any) -> None:
    for name in ("chaos", "soak"):
        soak = name == "soak"
        p = sub.add_parser(name, help="faults under load on an FT pair, then a verdict"
                           if not soak else "a long run without faults: RSS and fds over time")
        if not soak:
            p.add_argument("--faults", default="kill,stop,partition",
                           help=f"comma-separated subset of {','.join(FAULTS)} (disk-full "
                                "needs root for its tmpfs)")
            p.add_argument("--failovers", type=int, default=0,
                           help="stop injecting after this many failovers (0: run the duration)")
            p.add_argument("--gap", type=float, default=1.0,
                           help="mean seconds of plain load between faults")
            p.add_argument("--weights", type=_weights, default={},
                           help="relative odds, e.g. kill=6,stop=1 (default "
                                + ",".join(f"{k}={v}" for k, v in WEIGHTS.items()) + ")")
        p.add_argument("--duration", type=float, default=3600.0 if soak else 60.0,
                       help="seconds of load (faults are injected during it)")
        p.add_argument("--seed", type=int, default=None, help="fault schedule seed (replay)")
        p.add_argument("--rate", type=float, default=200.0,
                       help="persistent sends per second per producer (3 producers)")
        p.add_argument("--activation", type=int, default=3, help="ft_activation of the pair")
        p.add_argument("--warmup", type=float, default=300.0 if soak else 10.0,
                       help="seconds before RSS/fd growth is judged")
        p.add_argument("--sample-every", type=float, default=SAMPLE_EVERY,
                       help="seconds between RSS/fd samples")
        p.add_argument("--out", type=Path,
                       help=f"result JSON (default {RAW_DIR}/{name}-<time>.json)")
        p.add_argument("--workdir", help="where the pair's directories go (default: tmp)")
        p.add_argument("--quiet", dest="progress", action="store_false",
                       help="no progress lines on stderr")


def main(args: argparse.Namespace) -> int:
    faults = [] if args.command == "soak" else [f.strip() for f in args.faults.split(",")
                                                 if f.strip()]
    unknown = [f for f in faults if f not in FAULTS + SELF_TEST_FAULTS]
    if unknown:
        print(f"unknown fault(s) {', '.join(unknown)}; expected {', '.join(FAULTS)}",
              file=sys.stderr)
        return 2
    args.faults = faults
    if args.command == "soak":
        args.failovers, args.gap, args.weights = 0, 1.0, {}
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    replay = ["python", "-m", "bench", args.command]
    if faults:
        replay += ["--faults", ",".join(faults)]
    replay += ["--duration", f"{args.duration:g}", "--seed", str(args.seed),
               "--rate", f"{args.rate:g}"]
    if args.command == "chaos" and args.failovers:
        replay += ["--failovers", str(args.failovers)]
    if args.command == "chaos":
        replay += ["--gap", f"{args.gap:g}"]
        if args.weights:
            replay += ["--weights", ",".join(f"{k}={v}" for k, v in args.weights.items())]
    replay_cmd = shlex.join(replay)
    started = now_iso()
    # SIGTERM (a test's timeout, a CI cancel) unwinds like Ctrl-C: atexit kills the
    # members (emsfast/_testbase/server_process.py) and unmounts the tmpfs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        body = _run_loop(args)
    except ClusterError as exc:
        print(f"{args.command}: could not set up the pair: {exc}", file=sys.stderr)
        return 2
    result = {"benchmark": args.command, "date": started, "replay": replay_cmd,
              "parameters": {"faults": faults, "duration": args.duration, "seed": args.seed,
                             "rate_per_producer": args.rate, "activation": args.activation,
                             "failovers_limit": getattr(args, "failovers", 0),
                             "gap": getattr(args, "gap", 0),
                             "weights": {**WEIGHTS, **args.weights}},
              "machine": machine_info(args.workdir or tempfile.gettempdir()),
              "software": software_info(), **body}
    out = args.out or RAW_DIR / f"{args.command}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(report(result))
    print(f"result: {out}")
    return 1 if result["violations"] else 0


def _run_loop(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:     # the client runs on either loop
        return asyncio.run(run(args))
    return uvloop.run(run(args))


def report(result: dict[str, Any]) -> str:
    """The plain-words summary printed at the end."""
    p = result["parameters"]
    kinds: dict[str, int] = {}
    for e in result["events"]:
        kinds[e["fault"]] = kinds.get(e["fault"], 0) + 1
    takeovers = sorted(e["takeover_seconds"] for e in result["events"]
                       if e.get("takeover_seconds") is not None)
    prods = result["load"]["producers"]
    lines = [
        f"{result['benchmark']}: seed {p['seed']}, {p['duration']:g} s, faults "
        f"{', '.join(f'{k} ×{n}' for k, n in sorted(kinds.items())) or 'none'}",
        f"failovers: {result['failovers']}"
        + (f"; takeover median {takeovers[len(takeovers) // 2]:.2f} s, "
           f"max {takeovers[-1]:.2f} s" if takeovers else ""),
        "sent {:,}, confirmed {:,}, refused {:,}, uncertain {:,}".format(
            sum(x["sent"] for x in prods.values()), sum(x["confirmed"] for x in prods.values()),
            sum(x["refused"] for x in prods.values()),
            sum(x["uncertain"] for x in prods.values())),
        "received " + ", ".join(f"{n} {c['received']:,} ({c['redelivered']:,} redelivered)"
                                for n, c in result["load"]["consumers"].items()),
    ]
    for kind in sorted(kinds):
        refused = sum(e.get("refused", 0) for e in result["events"] if e["fault"] == kind)
        uncertain = sum(e.get("uncertain", 0) for e in result["events"] if e["fault"] == kind)
        if refused or uncertain:
            lines.append(f"{kind}: {refused:,} send(s) refused by the server, {uncertain:,} "
                         "left uncertain (no answer before the client gave up)")
    g = result["resources"]["growth"]
    if g.get("checked"):
        lines.append(f"active member after warm-up: RSS {g['rss_kib_first'] // 1024} → "
                     f"{g['rss_kib_last'] // 1024} MiB, fds {g['fds_first']:g} → "
                     f"{g['fds_last']:g}")
    if result["violations"]:
        lines.append(f"FAILED: {len(result['violations'])} violation(s):")
        lines += [f"  - {v['kind']}: {v['text']}" for v in result["violations"]]
        lines.append(f"replay: {result['replay']}")
    else:
        lines.append("OK: nothing confirmed was lost, nothing unexpected, no unflagged "
                     "duplicate, order kept, never two actives")
    return "\n".join(lines)
