"""Lint, types and stubs are part of the suite: a failure here fails `make test`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)


def test_ruff() -> None:
    result = run("ruff", "check", "emsfast", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = run("mypy", "--strict", "emsfast")
    assert result.returncode == 0, result.stdout + result.stderr


def test_stubs_match_the_compiled_core() -> None:
    result = run("mypy.stubtest", "--ignore-disjoint-bases", "--allowlist",
                 "tests/stubtest_allowlist.txt", "emsfast._core.framing",
                 "emsfast._core.message", "emsfast._core.crc", "emsfast._core.dispatch",
                 "emsfast._core.storeenc")
    assert result.returncode == 0, result.stdout + result.stderr


def test_core_imports_only_errors_and_consts() -> None:
    # STYLE.md: _core imports only emsfast.errors and emsfast.consts from emsfast.
    bad = []
    for path in (ROOT / "emsfast" / "_core").glob("*.py*"):
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] in ("import", "from", "cimport") and \
                    words[1].startswith("emsfast.") and not words[1].startswith(
                        ("emsfast._core", "emsfast.errors", "emsfast.consts")):
                bad.append(f"{path.name}: {line.strip()}")
    assert bad == []


def test_orchestration_never_imports_entry_points() -> None:
    layers = ("server", "config", "store", "selector", "ft", "auth", "admin", "link")
    bad = []
    for layer in layers:
        for path in (ROOT / "emsfast" / layer).rglob("*.py"):
            text = path.read_text()
            if "emsfast.client" in text or "emsfast.cli" in text:
                bad.append(str(path.relative_to(ROOT)))
    assert bad == []
