"""End-to-end workloads: client processes against a real broker, medians of N runs.

The orchestration here knows no client library: it starts role processes (the
broker's ``roles_module``: ``bench/roles.py`` for emsfast, ``roles_nats.py``, ...,
all speaking the READY / GO / JSON lines of ``bench/roles_base.py``), lines them up,
and turns their timestamps into figures.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.baseline import loopback_rtt
from bench.common import Daemon, Progress, child_env, load_average, median, percentile
from bench.peers import PEERS, PeerBroker

Broker = Daemon | PeerBroker

# A run that takes longer than this is broken, not slow.
RUN_TIMEOUT = 300.0
READY_TIMEOUT = 30.0

DESCRIPTIONS = {
    "queue": "non-persistent 128-byte messages, 1 producer -> 1 queue consumer; "
             "end to end = first send to last receive",
    "persistent": "persistent 128-byte messages, each confirmed by the broker's synced "
                  "store (emsfast: $sys.failsafe; send_async, window 1000, flush at the "
                  "end), 1 producer -> 1 queue consumer; end to end = first send to last "
                  "receive",
    "persist_backlog": "publish 100,000 persistent 128-byte messages, each confirmed "
                       "(window 1000), with no consumer; then one consumer drains them; "
                       "rate = messages / (publish time + drain time)",
    "persistent_sync": "persistent 128-byte messages to a queue on the mode=sync store "
                       "$sys.failsafe (every confirm waits for the fsync that covers it; "
                       "send_async, window 1000), 1 producer -> 1 queue consumer",
    "fanout": "non-persistent 128-byte messages, 1 producer -> 4 topic subscribers; "
              "rate = messages delivered / (first send to last receive)",
    "rpc": "request/reply round trips, one at a time: requester sends to a queue with "
           "reply_to set to a second queue, a responder process answers; latency from "
           "before send() to after receive() (perf_counter_ns)",
    "large": "non-persistent 64 KiB messages, 1 producer -> 1 queue consumer",
    "many_dests": "non-persistent 128-byte messages spread round-robin over 1,000 queues, "
                  "1 producer process -> 1 consumer process subscribed to all 1,000",
}
WORKLOADS = tuple(DESCRIPTIONS)
# persistent_sync (the store issue's name) is persistent on its own queue; since issue 8
# persistent itself goes to $sys.failsafe, so the default run leaves it out.
DEFAULT_WORKLOADS = tuple(w for w in WORKLOADS if w != "persistent_sync")


@dataclass
class Params:
    runs: int = 3
    count: int = 200_000          # throughput messages per run
    rpc_count: int = 20_000       # round trips per rpc run
    subscribers: int = 4
    size: int = 128
    body: str = "text"
    ack: str = "auto"
    prefetch: int = 1000
    window: int = 1000
    loop: str = "uvloop"
    backlog_count: int = 100_000  # persist_backlog messages per measured run
    large_count: int = 20_000     # 64 KiB messages per run (at most)
    large_size: int = 65_536
    dests: int = 1000             # many_dests queues
    # Measured runs send what the warm-up rate gives in this many seconds, between
    # count // 20 and count, so a slow broker's run takes seconds, not minutes.
    target_seconds: float = 4.0
    tls: bool = False             # emsfast clients on an ssl:// listener (bench/tlscerts.py)
    tls_trusted: str = ""         # CA file the roles trust; set by make_broker

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Child:
    """A role process; its stdout lines arrive on a queue read with timeouts."""

    def __init__(self, name: str, args: Sequence[str], module: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args], env=child_env(),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._err: list[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self._lines.put),
                             daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self._err.append),
                             daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(pipe: IO[str], put: Callable[[Any], None]) -> None:
        for line in pipe:
            put(line)
        put(None)

    def _fail(self, what: str) -> RuntimeError:
        self.kill()
        for t in self._threads:
            t.join(2)
        err = "".join(e for e in self._err if e)[-4000:]
        return RuntimeError(f"{self.name}: {what}\n{err}")

    def line(self, timeout: float) -> str:
        try:
            got = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise self._fail(f"no output within {timeout:.0f}s") from None
        if got is None:
            raise self._fail(f"exited with {self.proc.wait()}")
        return got.strip()

    def expect_ready(self) -> None:
        got = self.line(READY_TIMEOUT)
        if got != "READY":
            raise self._fail(f"expected READY, got {got!r}")

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("GO\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.line(timeout))
        if self.proc.wait(30) != 0:
            raise self._fail(f"exited with {self.proc.returncode} after its result")
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Roles:
    """Every child of one run; ``close()`` kills whatever is still running."""

    def __init__(self, broker: Broker, p: Params) -> None:
        self.broker = broker
        self.p = p
        self.children: list[Child] = []

    def start(self, name: str, role: str, *args: str) -> Child:
        p = self.p
        argv = [role, "--url", self.broker.url, "--size", str(p.size), "--body", p.body,
                "--ack", p.ack, "--window", str(p.window), "--loop", p.loop, *args]
        if p.tls_trusted and self.broker.kind == "emsfast":
            argv += ["--ssl-trusted", p.tls_trusted]
        child = Child(name, argv, self.broker.roles_module)
        self.children.append(child)
        return child

    def close(self) -> None:
        for c in self.children:
            c.kill()

    def __enter__(self) -> Roles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rate(n: int, t0: int, t1: int) -> float:
    return n / ((t1 - t0) / 1e9)


def _broker_cpu(broker: Broker, cpu0: float, seconds: float, msgs: int) -> dict[str, float]:
    cpu = broker.cpu_seconds() - cpu0
    return {"broker_cpu_s": cpu, "broker_cpu_util": cpu / seconds,
            "broker_cpu_us_per_msg": cpu / msgs * 1e6}


# -- one run of each case --------------------------------------------------------------


def run_p2p(broker: Broker, p: Params, *, mode: str, placement: str, dest: str,
            dests: int = 1) -> dict[str, Any]:
    """1 producer -> 1 queue consumer, in two processes or one."""
    common = ["--kind", "queue", "--dest", dest, "--count", str(p.count), "--mode", mode,
              "--dests", str(dests)]
    with Roles(broker, p) as roles:
        if placement == "same":
            pair = roles.start("pair", "pair", *common)
            pair.expect_ready()
            cpu0 = broker.cpu_seconds()
            pair.go()
            both = pair.result()
            prod, cons = both["produce"], both["consume"]
        else:
            consumer = roles.start("consumer", "consume", *common)
            consumer.expect_ready()
            producer = roles.start("producer", "produce", *common)
            producer.expect_ready()
            cpu0 = broker.cpu_seconds()
            producer.go()
            prod, cons = producer.result(), consumer.result()
    seconds = (cons["t_last"] - prod["t_first"]) / 1e9
    out: dict[str, Any] = {
        "msgs": p.count, "seconds": seconds,
        "msgs_per_s": _rate(p.count, prod["t_first"], cons["t_last"]),
        "producer_send_msgs_per_s": _rate(p.count, prod["t_first"], prod["t_sent"]),
        "producer_cpu_s": prod["cpu_s"], "consumer_cpu_s": cons["cpu_s"],
        "prefetch": cons["prefetch"],
    }
    if mode == "persistent":
        out["confirmed_msgs_per_s"] = _rate(p.count, prod["t_first"], prod["t_flushed"])
    out.update(_broker_cpu(broker, cpu0, seconds, p.count))
    return out


def run_backlog(broker: Broker, p: Params) -> dict[str, Any]:
    """Publish ``count`` confirmed persistent messages with no consumer, then drain."""
    common = ["--kind", "queue", "--dest", "bench.backlog", "--count", str(p.count),
              "--mode", "persistent"]
    with Roles(broker, p) as roles:
        producer = roles.start("producer", "produce", *common)
        producer.expect_ready()
        cpu0 = broker.cpu_seconds()
        producer.go()
        prod = producer.result()
        consumer = roles.start("consumer", "consume", *common)
        consumer.expect_ready()
        cons = consumer.result()
    publish_s = (prod["t_flushed"] - prod["t_first"]) / 1e9
    drain_s = (cons["t_last"] - cons["t_first"]) / 1e9
    out: dict[str, Any] = {
        "msgs": p.count, "seconds": publish_s + drain_s,
        "msgs_per_s": p.count / (publish_s + drain_s),
        "publish_confirmed_msgs_per_s": p.count / publish_s,
        "drain_msgs_per_s": p.count / drain_s,
        "producer_cpu_s": prod["cpu_s"], "consumer_cpu_s": cons["cpu_s"],
    }
    # Broker CPU over publish, consumer start-up and drain; the rate uses only the first two.
    cpu = broker.cpu_seconds() - cpu0
    out.update({"broker_cpu_s": cpu, "broker_cpu_us_per_msg": cpu / p.count * 1e6,
                "broker_cpu_util": cpu / (publish_s + drain_s)})
    return out


def run_fanout(broker: Broker, p: Params) -> dict[str, Any]:
    common = ["--kind", "topic", "--dest", "bench.fanout", "--count", str(p.count)]
    with Roles(broker, p) as roles:
        subs = [roles.start(f"subscriber{i}", "consume", *common) for i in range(p.subscribers)]
        for s in subs:
            s.expect_ready()
        producer = roles.start("producer", "produce", *common)
        producer.expect_ready()
        cpu0 = broker.cpu_seconds()
        producer.go()
        prod = producer.result()
        got = [s.result() for s in subs]
    t0 = prod["t_first"]
    t_end = max(g["t_last"] for g in got)
    delivered = p.count * len(got)
    seconds = (t_end - t0) / 1e9
    per_sub = [_rate(p.count, t0, g["t_last"]) for g in got]
    out: dict[str, Any] = {
        "msgs_published": p.count, "msgs_delivered": delivered, "seconds": seconds,
        "delivered_msgs_per_s": delivered / seconds,
        "per_subscriber_msgs_per_s": per_sub,
        "per_subscriber_min_msgs_per_s": min(per_sub),
        "published_msgs_per_s": _rate(p.count, t0, prod["t_sent"]),
        "producer_cpu_s": prod["cpu_s"],
        "subscriber_cpu_s": [g["cpu_s"] for g in got],
        "prefetch": got[0]["prefetch"],
    }
    out.update(_broker_cpu(broker, cpu0, seconds, delivered))
    return out


def run_rpc(broker: Broker, p: Params) -> dict[str, Any]:
    common = ["--kind", "queue", "--dest", "bench.rpc.request", "--count", str(p.rpc_count)]
    with Roles(broker, p) as roles:
        responder = roles.start("responder", "respond", *common)
        responder.expect_ready()
        requester = roles.start("requester", "request", *common, "--reply", "bench.rpc.reply")
        requester.expect_ready()
        cpu0 = broker.cpu_seconds()
        requester.go()
        req = requester.result()
        resp = responder.result()
    lat: list[int] = req.pop("latency_ns_sorted")
    seconds = (req["t_last"] - req["t_first"]) / 1e9
    out: dict[str, Any] = {
        "round_trips": p.rpc_count, "seconds": seconds,
        "round_trips_per_s": p.rpc_count / seconds,
        "p50_us": percentile(lat, 50) / 1e3, "p90_us": percentile(lat, 90) / 1e3,
        "p99_us": percentile(lat, 99) / 1e3, "p99_9_us": percentile(lat, 99.9) / 1e3,
        "min_us": lat[0] / 1e3, "max_us": lat[-1] / 1e3,
        "mean_us": sum(lat) / len(lat) / 1e3,
        "requester_cpu_s": req["cpu_s"], "responder_cpu_s": resp["cpu_s"],
    }
    # Two messages pass through the broker per round trip.
    out.update(_broker_cpu(broker, cpu0, seconds, 2 * p.rpc_count))
    return out


# -- workloads: cases, warm-up, medians ------------------------------------------------


@dataclass
class Case:
    name: str
    placement: str
    run: Callable[[Broker, Params], dict[str, Any]]
    headline: str                                   # the metric the README shows
    extra: dict[str, Any] = field(default_factory=dict)
    count_field: str = "count"                      # the Params field a run's size is in
    rate: str = "msgs_per_s"                        # the warm-up figure that scales it
    scaled: bool = True


def cases(workload: str, broker_kind: str = "emsfast") -> list[Case]:
    sep = "producer and consumer in two processes"
    same = "producer and consumer in one process (one loop, two connections)"
    if workload == "queue":
        return [
            Case("separate", sep, lambda b, p: run_p2p(
                b, p, mode="non_persistent", placement="separate", dest="bench.queue"),
                "msgs_per_s"),
            Case("same", same, lambda b, p: run_p2p(
                b, p, mode="non_persistent", placement="same", dest="bench.queue"),
                "msgs_per_s"),
        ][:2 if broker_kind == "emsfast" else 1]  # the one-process pair is emsfast's only
    if workload == "persistent":
        return [Case("separate", sep, lambda b, p: run_p2p(
            b, p, mode="persistent", placement="separate", dest="bench.persistent"),
            "msgs_per_s")]
    if workload == "persist_backlog":
        return [Case("separate", "producer process, then a consumer process", run_backlog,
                     "msgs_per_s", count_field="backlog_count", scaled=False)]
    if workload == "persistent_sync":
        return [Case("separate", sep, lambda b, p: run_p2p(
            b, p, mode="persistent", placement="separate", dest="bench.sync.q"),
            "msgs_per_s")]
    if workload == "fanout":
        return [Case("separate", "1 producer process + 4 subscriber processes",
                     run_fanout, "delivered_msgs_per_s", rate="published_msgs_per_s")]
    if workload == "rpc":
        return [Case("separate", "requester and responder in two processes", run_rpc,
                     "p50_us", count_field="rpc_count", rate="round_trips_per_s")]
    if workload == "large":
        return [Case("separate", sep, lambda b, p: run_p2p(
            b, dataclasses.replace(p, size=p.large_size), mode="non_persistent",
            placement="separate", dest="bench.large"), "msgs_per_s",
            count_field="large_count")]
    if workload == "many_dests":
        return [Case("separate", "1 producer process -> 1 consumer process, 1,000 queues",
                     lambda b, p: run_p2p(b, p, mode="non_persistent", placement="separate",
                                          dest="bench.many", dests=p.dests), "msgs_per_s")]
    raise ValueError(f"unknown workload {workload!r}; expected one of {', '.join(WORKLOADS)}")


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of every numeric metric across runs (lists: element-wise)."""
    out: dict[str, Any] = {}
    for key, first in runs[0].items():
        if isinstance(first, bool):
            continue
        if isinstance(first, int | float):
            out[key] = median([r[key] for r in runs])
        elif isinstance(first, list) and first and isinstance(first[0], int | float):
            out[key] = [median([r[key][i] for r in runs]) for i in range(len(first))]
    return out


def queues_conf(p: Params) -> str:
    # EMS's default queue prefetch of 5 would measure round trips, not throughput.
    # Persistent workloads go to the sync store: fsync'd before the confirm, like the peers.
    return (f">\nbench.> prefetch={p.prefetch}\n"
            f"bench.persistent prefetch={p.prefetch},store=$sys.failsafe\n"
            f"bench.backlog prefetch={p.prefetch},store=$sys.failsafe\n"
            f"bench.sync.> prefetch={p.prefetch},store=$sys.failsafe\n")


def topics_conf(p: Params) -> str:
    return f">\nbench.> prefetch={p.prefetch}\n"


def make_broker(kind: str, p: Params) -> Broker:
    if kind == "emsfast":
        params: dict[str, str] = {}
        if p.tls:
            from bench.tlscerts import tls_setup

            tmp = tempfile.mkdtemp(prefix="emsfast-bench-tls-")
            params, p.tls_trusted = tls_setup(Path(tmp))
            # The CA and key live outside the daemon's directory: remove them at exit.
            atexit.register(shutil.rmtree, tmp, True)
        return Daemon(queues_conf(p), topics_conf(p), params=params)
    return PEERS[kind]()


def _sized(p: Params, case: Case, n: int) -> Params:
    """``p`` with this case's run size set to ``n`` messages (or round trips)."""
    if case.count_field == "rpc_count":
        return dataclasses.replace(p, rpc_count=n)
    return dataclasses.replace(p, count=n)


def run_case(broker: Broker, case: Case, label: str, p: Params, progress: Progress,
             profile: Callable[[Broker, str, Callable[[], Any]], Any] | None,
             ) -> dict[str, Any]:
    full = int(getattr(p, case.count_field))
    progress.step(f"{label}: warm-up")
    warm_n = max(1, full // 10)
    warmup = case.run(broker, _sized(p, case, warm_n))
    n = full
    if case.scaled:
        n = int(min(full, max(full // 20, warmup[case.rate] * p.target_seconds)))
    pn = _sized(p, case, n)
    runs = []
    for i in range(p.runs):
        progress.step(f"{label}: run {i + 1}/{p.runs} ({n:,})")
        # Other work on a shared machine shows here: the load just before each run.
        load = load_average()[0]
        runs.append(case.run(broker, pn))
        runs[-1]["load_1min_before"] = load
        progress.step(f"{label}: run {i + 1}/{p.runs}: "
                      f"{case.headline} = {runs[-1][case.headline]:,.1f}")
    med = medians(runs)
    progress.done(f"{label}: median {case.headline} = {med[case.headline]:,.1f}, "
                  f"broker CPU {med['broker_cpu_util']:.0%}")
    out: dict[str, Any] = {"placement": case.placement, "headline": case.headline,
                           "count": n, "warmup_count": warm_n, "warmup": warmup,
                           "runs": runs, "median": med}
    if profile is not None:
        progress.step(f"{label}: profiling one extra run")
        profile(broker, label.replace("/", "-"), functools.partial(case.run, broker, pn))
        out["profiled"] = True
    return out


def run_workload(workload: str, p: Params, progress: Progress,
                 profile: Callable[[Broker, str, Callable[[], Any]], Any] | None = None,
                 kind: str = "emsfast") -> dict[str, Any]:
    """One fresh broker per workload; per case 1 warm-up + ``p.runs`` measured runs.

    A case that fails is recorded with its error and the run goes on; a workload the
    broker has no equivalent for is recorded as skipped with the reason.
    """
    result: dict[str, Any] = {"description": DESCRIPTIONS[workload], "cases": {}}
    peer = PEERS.get(kind)
    if peer is not None and workload in peer.unsupported:
        result["skipped"] = peer.unsupported[workload]
        progress.done(f"{kind} {workload}: skipped: {peer.unsupported[workload]}")
        return result
    with make_broker(kind, p) as broker:
        for case in cases(workload, kind):
            label = f"{kind} {workload}/{case.name}"
            try:
                result["cases"][case.name] = run_case(broker, case, label, p, progress,
                                                      profile)
            except Exception as exc:  # recorded, shown, and the next case runs
                if not broker.alive():
                    msg = f"{kind} died: {broker.log()[-2000:]}"
                else:
                    msg = str(exc)[-2000:]
                result["cases"][case.name] = {"placement": case.placement,
                                              "headline": case.headline, "error": msg}
                last = [ln for ln in msg.splitlines() if ln.strip()] or [repr(exc)]
                progress.done(f"{label}: FAILED: {last[-1][:200]}")
                if not broker.alive():
                    break
        if workload == "rpc" and kind == "emsfast":
            progress.step("rpc: loopback floor (no broker)")
            result["loopback_floor"] = loopback_rtt(min(p.rpc_count, 10_000), p.size)
    return result
