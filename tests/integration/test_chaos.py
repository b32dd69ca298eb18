"""``python -m bench chaos`` and ``soak`` end to end: the short CI variant of issue 9.

The short run drives an FT pair through about twenty failovers (kill -9, SIGSTOP,
FT-link partitions, cut client links and, as root, a full disk) under persistent
load and must find nothing wrong; the wipe run destroys the store's message files
and must report the loss, so a checker that always says OK fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _chaos(tmp_path: Path, *args: str, timeout: float) -> tuple[int, str, dict]:
    out = tmp_path / "result.json"
    cmd = [sys.executable, "-m", "bench", *args, "--out", str(out), "--workdir", str(tmp_path),
           "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        text, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()            # the checker kills its members on SIGTERM
        try:
            text, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            text, _ = proc.communicate()
        pytest.fail(f"{' '.join(args)} did not finish in {timeout} s:\n{text[-5000:]}")
    result = json.loads(out.read_text()) if out.exists() else {}
    return proc.returncode, text, result


def _can_mount_tmpfs(tmp_path: Path) -> bool:
    if os.geteuid() != 0:
        return False
    probe = tmp_path / "probe"
    probe.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["umount", "-l", str(probe)], capture_output=True)
    return ok


@pytest.mark.timeout(420)
def test_twenty_failovers_under_load_lose_nothing(tmp_path: Path) -> None:
    faults = "kill,stop,partition" + (",disk-full" if _can_mount_tmpfs(tmp_path) else "")
    rc, text, result = _chaos(tmp_path, "chaos", "--faults", faults, "--failovers", "20",
                              "--duration", "240", "--gap", "0.5", "--seed", "9",
                              timeout=360)
    assert rc == 0, text
    assert result["violations"] == [], text
    assert result["failovers"] >= 20, text
    kinds = {e["fault"] for e in result["events"]}
    assert {"kill", "stop"} <= kinds, kinds
    producers = result["load"]["producers"].values()
    assert all(p["confirmed"] > 0 for p in producers), text
    # Every takeover is a new, larger epoch: one ownership per failover plus the first.
    epochs = [o["epoch"] for o in sorted(result["ownerships"], key=lambda o: o["at"])]
    assert epochs == sorted(set(epochs)) and len(epochs) >= result["failovers"] + 1
    assert "OK: nothing confirmed was lost" in text


@pytest.mark.timeout(180)
def test_checker_reports_loss_when_the_store_is_wiped(tmp_path: Path) -> None:
    rc, text, result = _chaos(tmp_path, "chaos", "--faults", "wipe", "--failovers", "1",
                              "--duration", "30", "--seed", "5", timeout=150)
    assert rc == 1, text
    kinds = {v["kind"] for v in result["violations"]}
    assert "lost" in kinds, text
    assert "FAILED" in text and "never reached" in text
    assert "replay: python -m bench chaos --faults wipe" in text and "--seed 5" in text


@pytest.mark.timeout(120)
def test_soak_reports_rss_and_fds_over_time(tmp_path: Path) -> None:
    rc, text, result = _chaos(tmp_path, "soak", "--duration", "16", "--warmup", "2",
                              "--sample-every", "0.5", timeout=100)
    assert rc == 0, text
    samples = result["resources"]["samples"]
    assert len(samples) >= 10
    assert all(s["a"]["rss_kib"] > 0 and s["a"]["fds"] > 0 for s in samples if "a" in s)
    assert result["resources"]["growth"]["checked"], result["resources"]["growth"]
    assert result["events"] == [] and result["violations"] == []
    assert "active member after warm-up: RSS" in text
