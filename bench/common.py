"""Shared benchmark plumbing: machine facts, a real ``emsfastd``, statistics, progress.

Everything here is broker-neutral except ``Daemon``; peer brokers (issue 8) get
their own class with the same ``url`` / ``cpu_seconds()`` / ``stop()`` shape.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
RAW_DIR = RESULTS_DIR / "raw"

READY_LINE = "Server is active."
# EMS.md 1.14: "Accepting connections on tcp://myhost/127.0.0.1:7222."
_ACCEPTING = re.compile(r"Accepting connections on (tcp|ssl)://[^/\s]*/([^\s]+):(\d+)\.")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- machine and software facts ------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_bytes() -> int:
    m = re.search(r"^MemTotal:\s+(\d+) kB", _read("/proc/meminfo"), re.M)
    return int(m.group(1)) * 1024 if m else 0


def disk_info(path: str | Path) -> dict[str, Any]:
    """The mount holding ``path``: device, filesystem, size, rotational if known."""
    target = os.path.realpath(path)
    best = ("", "", "")
    for line in _read("/proc/mounts").splitlines():
        dev, mnt, fstype = (line.split() + ["", "", ""])[:3]
        if (target == mnt or target.startswith(mnt.rstrip("/") + "/")) and len(mnt) > len(best[1]):
            best = (dev, mnt, fstype)
    info: dict[str, Any] = {"path": target, "device": best[0], "mount": best[1],
                            "fstype": best[2]}
    try:
        info["size_bytes"] = shutil.disk_usage(target).total
    except OSError:
        pass
    # /sys/block/<dev>/queue/rotational: 0 = SSD/NVMe, 1 = spinning disk.
    name = os.path.basename(best[0])
    for cand in (name, re.sub(r"p?\d+$", "", name)):
        rot = _read(f"/sys/block/{cand}/queue/rotational").strip()
        if rot:
            info["rotational"] = rot == "1"
            break
    return info


def machine_info(store_dir: str | Path) -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "memory_bytes": memory_bytes(),
        "disk": disk_info(store_dir),
        "kernel": platform.release(),
        "hostname": platform.node(),
    }


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def build_type() -> dict[str, Any]:
    """Release or debug build of the Cython core (setup.py: EMSFAST_DEBUG=1 → -O0 -g)."""
    from emsfast._core import framing

    so = Path(str(framing.__file__))
    # Release builds compile with -g0, so DWARF sections mean EMSFAST_DEBUG=1.
    debug_info = b".debug_info" in so.read_bytes()
    return {"type": "debug" if debug_info else "release", "module": so.name,
            "env_EMSFAST_DEBUG": os.environ.get("EMSFAST_DEBUG")}


def software_info() -> dict[str, Any]:
    import emsfast

    return {
        "python": {"version": platform.python_version(),
                   "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "loop": {"name": "uvloop" if _version("uvloop") else "asyncio",
                 "uvloop": _version("uvloop")},
        "emsfast": {"version": emsfast.__version__, "commit": _git("rev-parse", "HEAD"),
                    "dirty": bool(_git("status", "--porcelain", "--untracked-files=no"))},
        "msgpack": _version("msgpack"),
        "build": build_type(),
    }


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = _read("/proc/loadavg").split()[:3]
    return float(one), float(five), float(fifteen)


def wait_for_quiet(limit: float, max_wait: float, progress: Any, poll: float = 10.0,
                   ) -> dict[str, Any]:
    """Wait (up to ``max_wait`` s) until the 1-minute load average is below ``limit``:
    the machine is shared, and a test suite running beside a benchmark skews it."""
    t0 = time.monotonic()
    before = load_average()
    now = before
    while now[0] >= limit and time.monotonic() - t0 < max_wait:
        progress.step(f"waiting for a quiet machine: load {now[0]:.2f} >= {limit} "
                      f"({time.monotonic() - t0:.0f}s of at most {max_wait:.0f}s)")
        time.sleep(poll)
        now = load_average()
    waited = time.monotonic() - t0
    progress.done(f"load average {now[0]:.2f} {now[1]:.2f} {now[2]:.2f} after waiting "
                  f"{waited:.0f}s")
    return {"limit_1min": limit, "before_wait": list(before), "at_start": list(now),
            "waited_s": round(waited, 1), "quiet": now[0] < limit}


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


def child_env() -> dict[str, str]:
    """Environment for child Pythons: import the same emsfast and bench as we do."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_DIR) + (os.pathsep + env["PYTHONPATH"]
                                         if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- statistics ----------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from /proc/<pid>/stat (fields 14 and 15)."""
    stat = _read(f"/proc/{pid}/stat")
    # The command name (field 2) may contain spaces; fields restart after ')'.
    rest = stat[stat.rfind(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / _CLK_TCK


# -- progress ------------------------------------------------------------------------


class Progress:
    """One status line on stderr, redrawn in place on a terminal, appended otherwise."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._out = stream or sys.stderr
        self._tty = self._out.isatty()
        self._start = time.monotonic()
        self._width = 0

    def step(self, text: str) -> None:
        line = f"[{time.monotonic() - self._start:6.1f}s] {text}"
        if self._tty:
            pad = max(0, self._width - len(line))
            self._out.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            self._out.write(line + "\n")
        self._out.flush()

    def done(self, text: str) -> None:
        """A line that stays (a finished measurement)."""
        self.step(text)
        if self._tty:
            self._out.write("\n")
            self._width = 0
        self._out.flush()


# -- the broker ----------------------------------------------------------------------


class _Drain(threading.Thread):
    """Reads a pipe into lines so the daemon never blocks on a full pipe."""

    def __init__(self, pipe: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self._pipe = pipe
        self.lines: list[str] = []
        self.cond = threading.Condition()
        self.eof = False

    def run(self) -> None:
        for raw in iter(self._pipe.readline, b""):
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace"))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()


class Daemon:
    """One ``emsfastd`` on 127.0.0.1 with a generated config in a temporary directory.

    Use as a context manager; ``stop()`` always runs, so no daemon outlives a run.
    """

    kind = "emsfast"
    roles_module = "bench.roles"

    def __init__(self, queues: str, topics: str, *, params: Mapping[str, str] | None = None,
                 workdir: str | None = None, ready_timeout: float = 30.0) -> None:
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="emsfast-bench-")
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        self.store_dir = self.workdir / "datastore"
        self.queues = queues
        self.topics = topics
        self.params = {
            "server": "EMSFAST-BENCH",
            "listen": "tcp://127.0.0.1:0",
            "store": str(self.store_dir),
            "queues": str(self.workdir / "queues.conf"),
            "topics": str(self.workdir / "topics.conf"),
            "max_msg_size": "8MB",
        }
        self.params.update(params or {})
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.scheme = "tcp"
        self._drain: _Drain | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Daemon:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "tibemsd.conf"
        conf.write_text("".join(f"{k} = {v}\n" for k, v in self.params.items()))
        Path(self.params["queues"]).write_text(self.queues)
        Path(self.params["topics"]).write_text(self.topics)
        cmd = [sys.executable, "-m", "emsfast.cli.daemon", "-config", str(conf)]
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=child_env(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        assert self.proc.stderr is not None
        self._drain = _Drain(self.proc.stderr)
        self._drain.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        drain = self._drain
        assert drain is not None
        deadline = time.monotonic() + self.ready_timeout
        with drain.cond:
            while not any(READY_LINE in line for line in drain.lines):
                left = deadline - time.monotonic()
                if drain.eof or left <= 0:
                    raise RuntimeError(f"emsfastd did not become active:\n{self.log()}")
                drain.cond.wait(left)
            m = _ACCEPTING.search("".join(drain.lines))
        if m is None:
            raise RuntimeError(f"emsfastd logged no 'Accepting connections' line:\n{self.log()}")
        self.scheme, self.port = m.group(1), int(m.group(3))

    def log(self) -> str:
        if self._drain is None:
            return ""
        with self._drain.cond:
            return "".join(self._drain.lines)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.pid)

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._drain is not None:
            self._drain.join(5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
