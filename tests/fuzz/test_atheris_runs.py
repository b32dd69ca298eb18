"""A short, bounded atheris run of every harness, so `make test` (and CI) keeps
them working; `make fuzz` is the long run (tests/fuzz/README.md).

Each harness runs in its own process for RUNS inputs on top of the committed
seed corpus. New inputs and crash files go to pytest's tmp_path, never into the
repository. A crash fails the test and shows the harness's output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris", reason="atheris is installed on Linux only (pyproject.toml)")

HERE = Path(__file__).resolve().parent
# Inputs per harness: together about 7 s on a 2-core machine, 15 s while it is
# busy with another job (config writes a file per input, selector compiles one).
RUNS = {"frames": 20_000, "messages": 20_000, "selector": 6_000, "config": 3_000}
TIMEOUT = 60


@pytest.mark.parametrize("target", sorted(RUNS))
def test_harness_runs_clean(target: str, tmp_path: Path) -> None:
    work, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    work.mkdir()
    artifacts.mkdir()
    cmd = [
        sys.executable, str(HERE / f"atheris_{target}.py"), str(work), str(HERE / "corpus" / target),
        f"-runs={RUNS[target]}", "-seed=1", "-timeout=10", "-rss_limit_mb=2048",
        f"-artifact_prefix={artifacts}/",
    ]
    # A new session, so a timeout can kill the harness and anything it started.
    # TMPDIR: libFuzzer exits without running atexit, so temp files stay in tmp_path.
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=tmp_path, env=env)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"atheris_{target}.py did not finish in {TIMEOUT}s:\n{out[-6000:]}")
    crashes = sorted(p.name for p in artifacts.iterdir())  # crash-, timeout-, oom-...
    assert proc.returncode == 0 and not crashes, (
        f"atheris_{target}.py exited {proc.returncode}, artefacts {crashes}:\n{out[-6000:]}")
