"""Optional profiling of one extra run per case (``python -m bench run --profile DIR``).

The broker is sampled from outside with py-spy (``--native`` shows Cython frames);
client roles profile themselves with cProfile when ``EMSFAST_BENCH_CPROFILE`` names a
directory. Profiled runs are never part of the reported figures.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Daemon

CPROFILE_ENV = "EMSFAST_BENCH_CPROFILE"


class Profiler:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        self.py_spy = shutil.which("py-spy") or _venv_py_spy()

    def __call__(self, broker: Daemon, label: str, run: Callable[[], Any]) -> None:
        os.environ[CPROFILE_ENV] = str(self.out_dir / label)
        spy: subprocess.Popen[bytes] | None = None
        if self.py_spy:
            # Sampling the broker, not tracing it: it runs at nearly full speed.
            spy = subprocess.Popen(
                [self.py_spy, "record", "--pid", str(broker.pid), "--native", "--rate", "250",
                 "--format", "raw", "-o", str(self.out_dir / f"broker-{label}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            run()
        finally:
            os.environ.pop(CPROFILE_ENV, None)
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                try:
                    spy.wait(60)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    spy.wait()


# Leaf frames where the broker waits rather than works.
_IDLE = ("epoll_wait", "epoll_pwait", "select", "poll")
_LINE = re.compile(r":\d+\)$")


def _func(frame: str) -> str:
    return _LINE.sub(")", frame)  # "f (file.py:12)" -> "f (file.py)": one row per function


def top_costs(collapsed: Path, n: int = 15) -> dict[str, Any]:
    """Busy samples only: share per function as innermost frame (self) and anywhere
    on the stack (inclusive), from py-spy's ``--format raw`` collapsed stacks."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    busy = idle = 0
    for line in collapsed.read_text().splitlines():
        stack, _, num = line.rpartition(" ")
        if not stack or not num.isdigit():
            continue
        frames = [_func(f) for f in stack.split(";")]
        if frames[-1].split(" ")[0] in _IDLE:
            idle += int(num)
            continue
        busy += int(num)
        own[frames[-1]] = own.get(frames[-1], 0) + int(num)
        for f in set(frames):
            if "emsfast/" in f and "emsfast/cli/" not in f:  # the loop and runner are in all
                incl[f] = incl.get(f, 0) + int(num)

    def top(d: dict[str, int]) -> list[tuple[str, float]]:
        return [(k, v / busy) for k, v in sorted(d.items(), key=lambda kv: -kv[1])[:n]]

    total = busy + idle
    return {"busy_share": busy / total if total else 0.0,
            "self": top(own) if busy else [], "inclusive": top(incl) if busy else []}


def _venv_py_spy() -> str | None:
    cand = Path(sys.executable).parent / "py-spy"
    return str(cand) if cand.exists() else None
