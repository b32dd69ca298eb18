"""Real ``emsfastd`` processes for integration tests (after asyncpg's ``cluster.py``).

A ``ServerProcess`` writes a complete EMS configuration set into its own directory,
starts the daemon on 127.0.0.1 port 0, waits for ``Server is active.`` on stderr and
reads the bound port back from the ``Accepting connections on ...`` line. A thread
drains stdout and stderr so a chatty daemon never blocks on a full pipe.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import emsfast

READY_LINE = "Server is active."
# EMS.md 1.14: "Accepting connections on tcp://myhost/0.0.0.0:7222."
_ACCEPTING = re.compile(r"Accepting connections on (tcp|ssl)://([^/\s]*)/([^\s]+):(\d+)\.")

_LIVE: weakref.WeakSet[ServerProcess] = weakref.WeakSet()


def _source_root() -> str:
    """The directory holding the ``emsfast`` package the tests import."""
    return str(Path(emsfast.__file__).resolve().parent.parent)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a child Python that must import the same emsfast as we do."""
    env = dict(os.environ)
    root = _source_root()
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


class _Drain(threading.Thread):
    """Copies one pipe into a list of lines; waiters are woken on every line."""

    def __init__(self, pipe: IO[bytes], cond: threading.Condition, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._pipe = pipe
        self._cond = cond
        self.lines: list[str] = []
        self.eof = False

    def run(self) -> None:
        try:
            for raw in iter(self._pipe.readline, b""):
                with self._cond:
                    self.lines.append(raw.decode("utf-8", "replace"))
                    self._cond.notify_all()
        finally:
            with self._cond:
                self.eof = True
                self._cond.notify_all()

    def text(self) -> str:
        with self._cond:
            return "".join(self.lines)


class ServerProcess:
    """One ``emsfastd`` with a generated configuration in ``workdir``.

    ``queues``/``topics`` are the text of queues.conf/topics.conf (default: a single
    ``>`` line, so any name may be created). ``params`` adds or overrides
    tibemsd.conf parameters (``listen`` may list several URLs, comma-separated);
    ``args`` are extra command-line options.
    """

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        name: str = "EMSFAST-TEST",
        queues: str = ">\n",
        topics: str = ">\n",
        max_msg_size: str = "1MB",
        max_connections: int = 0,
        params: Mapping[str, str] | None = None,
        args: Sequence[str] = (),
        ready_timeout: float = 20.0,
    ) -> None:
        if workdir is None:
            self._tmp: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(
                prefix="emsfastd-"
            )
            workdir = self._tmp.name
        else:
            self._tmp = None
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.queues = queues
        self.topics = topics
        self.args = list(args)
        self.ready_timeout = ready_timeout
        self.params: dict[str, str] = {
            "server": name,
            "listen": "tcp://127.0.0.1:0",
            "store": str(self.workdir / "datastore"),
            "queues": str(self.workdir / "queues.conf"),
            "topics": str(self.workdir / "topics.conf"),
            "logfile": str(self.workdir / "emsfastd.log"),
            "max_msg_size": max_msg_size,
            "max_connections": str(max_connections),
        }
        if params:
            self.params.update(params)
        self.config_path = self.workdir / "tibemsd.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None     # the first tcp:// listener's (else the first's)
        self.tcp_port: int | None = None
        self.ssl_port: int | None = None
        self.host: str | None = None
        self._cond = threading.Condition()
        self._stderr: _Drain | None = None
        self._stdout: _Drain | None = None

    # -- configuration -------------------------------------------------------------

    def write_config(self) -> Path:
        """Write tibemsd.conf, queues.conf and topics.conf; return tibemsd.conf's path."""
        lines = ["# written by emsfast._testbase.ServerProcess"]
        for key, value in self.params.items():
            # listen is repeatable: "tcp://127.0.0.1:0,ssl://127.0.0.1:0" is two lines.
            values = value.split(",") if key == "listen" else [value]
            lines += [f"{key} = {v.strip()}" for v in values]
        self.config_path.write_text("\n".join(lines) + "\n")
        Path(self.params["queues"]).write_text(self.queues)
        Path(self.params["topics"]).write_text(self.topics)
        return self.config_path

    # -- life cycle ----------------------------------------------------------------

    def start(self, *, wait_ready: bool = True, write_config: bool = True) -> ServerProcess:
        if self.proc is not None:
            raise RuntimeError("server already started")
        if write_config:
            self.write_config()
        cmd = [sys.executable, "-m", "emsfast.cli.daemon", "-config", str(self.config_path)]
        cmd += self.args
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.workdir,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        _LIVE.add(self)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._stderr = _Drain(self.proc.stderr, self._cond, "emsfastd-stderr")
        self._stdout = _Drain(self.proc.stdout, self._cond, "emsfastd-stdout")
        self._stderr.start()
        self._stdout.start()
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the ready line; raise with the log if the daemon dies or hangs."""
        self.wait_for_line(READY_LINE, timeout if timeout is not None else self.ready_timeout)
        found = _ACCEPTING.findall(self.log_text())
        if not found:
            self.kill()
            raise RuntimeError(
                "emsfastd is active but logged no 'Accepting connections on "
                f"tcp://<host>/<ip>:<port>.' line:\n{self.log_text()}"
            )
        tcp = [f for f in found if f[0] == "tcp"]
        tls = [f for f in found if f[0] == "ssl"]
        first = tcp[0] if tcp else found[0]
        self.host, self.port = first[2], int(first[3])
        self.tcp_port = int(tcp[0][3]) if tcp else None
        self.ssl_port = int(tls[0][3]) if tls else None

    def wait_for_line(self, text: str, timeout: float) -> str:
        """Wait until a stderr line contains ``text`` (a substring); return that line."""
        assert self._stderr is not None and self.proc is not None
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                lines = self._stderr.lines
                for line in lines[seen:]:
                    if text in line:
                        return line
                seen = len(lines)
                if self._stderr.eof:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        rc = self.proc.poll()
        state = f"exited with {rc}" if rc is not None else f"still running after {timeout}s"
        if rc is None:
            self.kill()
        raise RuntimeError(
            f"emsfastd never logged {text!r} ({state}).\n--- stderr ---\n{self.log_text()}"
            f"--- stdout ---\n{self.stdout_text()}"
        )

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the daemon to exit on its own; return its exit code."""
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        self._join_drains()
        return rc

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._join_drains()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL (the whole process group, in case the daemon spawned helpers)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()
        self._join_drains()

    def cleanup(self) -> None:
        self.kill()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _join_drains(self) -> None:
        for drain in (self._stderr, self._stdout):
            if drain is not None:
                drain.join(5)

    # -- views ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The first tcp:// listener's URL (the ssl:// one when there is no tcp://)."""
        if self.port is None:
            raise RuntimeError("server not ready: no port yet")
        scheme = "tcp" if self.tcp_port is not None else "ssl"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def ssl_url(self) -> str:
        """``ssl://127.0.0.1:PORT`` of the first ``listen = ssl://...`` listener."""
        if self.ssl_port is None:
            raise RuntimeError("server has no ssl:// listener (or is not ready)")
        return f"ssl://127.0.0.1:{self.ssl_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        """Everything the daemon wrote to stderr so far."""
        return self._stderr.text() if self._stderr else ""

    def stdout_text(self) -> str:
        return self._stdout.text() if self._stdout else ""

    def logfile_text(self) -> str:
        path = Path(self.params["logfile"])
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_logfile(self, text: str, timeout: float = 10.0) -> str:
        """Poll the logfile until it contains ``text`` (it is written beside stderr,
        so it may lag a moment); return its content."""
        deadline = time.monotonic() + timeout
        while True:
            content = self.logfile_text()
            if text in content or time.monotonic() > deadline:
                return content
            time.sleep(0.05)

    def rss_kib(self) -> int:
        """Resident set size of the daemon (Linux), to catch unbounded allocations."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def __enter__(self) -> ServerProcess:
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<ServerProcess {self.name} port={self.port} pid={self.proc and self.proc.pid}>"


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        server.kill()


# -- sample clients ---------------------------------------------------------------

_CLI_MODULES = {
    "produce": "emsfast.cli.produce",
    "consume": "emsfast.cli.consume",
    "daemon": "emsfast.cli.daemon",
    "admin": "emsfast.cli.admin",
}


def cli_command(tool: str, args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", _CLI_MODULES[tool], *args]


def run_cli(
    tool: str,
    args: Sequence[str],
    input: str | None = None,
    timeout: float = 30.0,
) -> tuple[int, str, str]:
    """Run ``emsfast-<tool>`` to completion; return (returncode, stdout, stderr)."""
    done = subprocess.run(
        cli_command(tool, args),
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env(),
    )
    return done.returncode, done.stdout, done.stderr


class CliProcess:
    """A sample client left running, its stdout read line by line as it arrives."""

    def __init__(self, tool: str, args: Sequence[str]) -> None:
        self.proc = subprocess.Popen(
            cli_command(tool, args),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
            start_new_session=True,
        )
        self._cond = threading.Condition()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._out = _Drain(self.proc.stdout, self._cond, "cli-stdout")
        self._err = _Drain(self.proc.stderr, self._cond, "cli-stderr")
        self._out.start()
        self._err.start()

    def wait_lines(self, n: int, timeout: float = 20.0) -> list[str]:
        """Wait until stdout holds ``n`` lines; return them without line ends."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._out.lines) < n and not self._out.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            lines = [line.rstrip("\n") for line in self._out.lines]
        if len(lines) < n:
            raise AssertionError(
                f"wanted {n} stdout lines, got {lines!r}; rc={self.proc.poll()}; "
                f"stderr:\n{self._err.text()}"
            )
        return lines

    def wait_stderr(self, text: str, timeout: float = 20.0) -> None:
        """Wait until stderr contains ``text``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while text not in "".join(self._err.lines) and not self._err.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        if text not in self._err.text():
            raise AssertionError(f"stderr never showed {text!r}:\n{self._err.text()}")

    def wait(self, timeout: float = 30.0) -> tuple[int, str, str]:
        """Wait for exit; return (returncode, stdout, stderr)."""
        rc = self.proc.wait(timeout)
        self._out.join(5)
        self._err.join(5)
        return rc, self._out.text(), self._err.text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


def free_port_closed() -> int:
    """A loopback port nothing listens on (bound, then released): connects are refused."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
