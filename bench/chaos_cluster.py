"""An FT pair wired for fault injection (bench/chaos.py, bench/soak.py).

Members ``a`` and ``b`` share one store. Each member's FT link to its peer and each
member's client listener are reached through a ``FaultProxy``, so a partition is
one call; with ``disk_full`` the store sits on a small tmpfs that a filler file
can fill. A sampler polls both members' ``/isReady`` to catch two actives.

Faults return a dict describing what was done and what the cluster did; a fault
leaves the pair with one active and one standby again before it returns.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.chaos_check import Ownership
from emsfast._testbase.fault_proxy import FaultProxy
from emsfast._testbase.ft_pair import STANDBY_LINE, FTPair, free_port
from emsfast._testbase.server_process import ServerProcess

ACTIVE_LINE = "Server is active."
_EPOCH = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) Store epoch (\d+):")
FAULTS = ("kill", "stop", "partition", "disk-full")
# Not a fault a broker can survive: kill -9 of the active and loss of its message
# files. It proves the checker sees real loss (tests/integration/test_chaos.py).
SELF_TEST_FAULTS = ("wipe",)
ROLES = ("a", "b")
STOP_AFTER_TAKEOVER = 5.0   # seconds a SIGSTOPped active stays hung after the takeover


class ClusterError(RuntimeError):
    """The pair did not reach the state a fault needs (with both members' logs)."""


async def wait_log(proc: ServerProcess, text: str, timeout: float) -> bool:
    """Poll the member's stderr for ``text`` without blocking the loop (never kills)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in proc.log_text():
            return True
        if proc.returncode is not None:
            return text in proc.log_text()
        await asyncio.sleep(0.02)
    return False


class Cluster:
    def __init__(self, root: Path, *, disk_full: bool, heartbeat: int = 1,
                 activation: int = 3, tmpfs_mb: int = 64,
                 confirmed: Callable[[], int] = lambda: 0) -> None:
        self.root = root
        # Clients leave a hung active by the heartbeats of EMS.md 2.5, as in conf/ft/.
        self.pair = FTPair(root, heartbeat=heartbeat, activation=activation, params={
            "server_heartbeat_client": "1", "client_timeout_server_connection": "3",
            "client_heartbeat_server": "1", "server_timeout_client_connection": "5"})
        self.confirmed = confirmed      # the load's confirmed sends so far
        self.activation = activation
        self.tmpfs: Path | None = None
        if disk_full:
            self.tmpfs = root / "storefs"
            self.tmpfs.mkdir(parents=True, exist_ok=True)
            mounted = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={tmpfs_mb}m", "tmpfs", str(self.tmpfs)],
                capture_output=True, text=True)
            if mounted.returncode != 0:
                self.tmpfs.rmdir()
                self.tmpfs = None
                raise ClusterError("the disk-full fault puts the store on a small tmpfs and "
                                   f"needs root to mount it: {mounted.stderr.strip()}")
            self.pair.store = self.tmpfs / "store"
            atexit.register(subprocess.run, ["umount", "-l", str(self.tmpfs)],
                            capture_output=True)
        self.health = {r: free_port() for r in ROLES}
        self.ft_proxy: dict[str, FaultProxy] = {}      # role -> proxy to its peer
        self.client_proxy: dict[str, FaultProxy] = {}  # role -> proxy to that member
        self.active = "a"
        self.runs = {r: 0 for r in ROLES}
        self.logs: list[dict[str, Any]] = []           # finished incarnations
        self.both_ready: list[float] = []
        self.sampler_errors: list[str] = []
        self.samples = 0
        self._sampler: asyncio.Task[None] | None = None
        self._filler: Path | None = None

    @property
    def urls(self) -> str:
        return ",".join(self.client_proxy[r].url for r in ROLES)

    def member(self, role: str) -> ServerProcess:
        return self.pair.members[role]

    @property
    def standby(self) -> str:
        return self.pair.peer(self.active)

    # -- life cycle ------------------------------------------------------------------

    async def start(self) -> None:
        for r in ROLES:
            self.ft_proxy[r] = await FaultProxy("127.0.0.1", self.pair.ports[self.pair.peer(r)]
                                                ).start()
            self.client_proxy[r] = await FaultProxy("127.0.0.1", self.pair.ports[r]).start()
        await self._launch("a", ACTIVE_LINE)
        await self._launch("b", STANDBY_LINE)
        self._sampler = asyncio.ensure_future(self._sample_ready())

    async def _launch(self, role: str, line: str) -> None:
        old = self.pair.members.get(role)
        if old is not None:
            self._retire(role, old)
        params = {"ft_active": self.ft_proxy[role].url,
                  "health_check_listen": f"http://127.0.0.1:{self.health[role]}"}
        proc = self.pair.member(role, params).start(wait_ready=False)
        self.runs[role] += 1
        if not await wait_log(proc, line, 60):
            raise ClusterError(f"member {role} never logged {line!r}\n{self.describe()}")
        proc.port = self.pair.ports[role]

    def _retire(self, role: str, proc: ServerProcess) -> None:
        proc.kill()
        self.logs.append({"member": role, "run": self.runs[role],
                          "exit": proc.returncode, "log": proc.log_text()})

    async def close(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sampler
        for role, proc in list(self.pair.members.items()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGCONT)   # a stopped member must die too
            self._retire(role, proc)
        self.pair.members.clear()
        for proxy in (*self.ft_proxy.values(), *self.client_proxy.values()):
            await proxy.close()
        self._release_disk()
        if self.tmpfs is not None:
            subprocess.run(["umount", "-l", str(self.tmpfs)], capture_output=True)

    def ownerships(self) -> list[Ownership]:
        out = []
        for entry in self.logs:
            for line in entry["log"].splitlines():
                m = _EPOCH.match(line)
                if m:
                    at = time.mktime(time.strptime(m[1][:19], "%Y-%m-%d %H:%M:%S"))
                    out.append(Ownership(at + float("0" + m[1][19:]), entry["member"],
                                         entry["run"], int(m[2])))
        return out

    def describe(self) -> str:
        parts = []
        for role, proc in self.pair.members.items():
            parts.append(f"--- member {role} (run {self.runs[role]}, exit {proc.returncode}) "
                         f"---\n{proc.log_text()[-4000:]}")
        return "\n".join(parts)

    # -- faults ----------------------------------------------------------------------

    async def inject(self, fault: str, hold: float) -> dict[str, Any]:
        began = time.monotonic()
        if fault == "kill":
            out = await self._kill()
        elif fault == "stop":
            out = await self._stop()
        elif fault == "partition-ft":
            out = await self._partition_ft(hold)
        elif fault == "partition-clients":
            out = await self._partition_clients(hold)
        elif fault == "disk-full":
            out = await self._disk_full(hold)
        elif fault == "wipe":
            out = await self._wipe()
        else:
            raise ValueError(f"unknown fault {fault!r}")
        return {"fault": fault, "at": round(time.time(), 3),
                "seconds": round(time.monotonic() - began, 3), **out}

    async def _takeover(self, timeout: float) -> float | None:
        """Wait for the standby to log it is active; seconds taken, None if it did not."""
        began = time.monotonic()
        if await wait_log(self.member(self.standby), ACTIVE_LINE, timeout):
            return time.monotonic() - began
        return None

    async def _kill(self) -> dict[str, Any]:
        victim = self.active
        self.member(victim).kill()
        took = await self._takeover(60)
        if took is None:
            raise ClusterError(f"no takeover after kill -9 of {victim}\n{self.describe()}")
        self.active = self.standby
        await self._launch(victim, STANDBY_LINE)
        return {"victim": victim, "failover": True, "takeover_seconds": round(took, 3)}

    async def _wipe(self) -> dict[str, Any]:
        victim = self.active
        self.member(victim).kill()
        removed = []
        for env in sorted(self.pair.store.glob("*.db")):
            if env.name != "meta.db":
                shutil.rmtree(env)
                removed.append(env.name)
        took = await self._takeover(60)
        if took is None:
            raise ClusterError(f"no takeover after wipe of {victim}\n{self.describe()}")
        self.active = self.standby
        await self._launch(victim, STANDBY_LINE)
        return {"victim": victim, "failover": True, "takeover_seconds": round(took, 3),
                "removed": removed}

    async def _stop(self) -> dict[str, Any]:
        victim = self.active
        proc = self.member(victim)
        os.kill(proc.pid, signal.SIGSTOP)
        out: dict[str, Any] = {"victim": victim, "failover": True}
        took = await self._takeover(self.activation + 10)
        if took is None:
            # Caught inside a write transaction it holds LMDB's writer lock: the
            # successor waits for it (server.py says so in its log). Let it run.
            out["woken_early"] = True
            os.kill(proc.pid, signal.SIGCONT)
            took = await self._takeover(60)
            if took is None:
                raise ClusterError(f"no takeover after SIGSTOP of {victim}\n{self.describe()}")
        else:
            # Still hung: its clients must leave it by heartbeat timeout and go on
            # through the new active (not wait for it to wake).
            before = self.confirmed()
            await asyncio.sleep(STOP_AFTER_TAKEOVER)
            out["confirmed_while_hung"] = self.confirmed() - before
            os.kill(proc.pid, signal.SIGCONT)
        out["takeover_seconds"] = round(took, 3)
        self.active = self.standby
        out["woken_exit"] = await self._exit_code(proc, 30)
        await self._launch(victim, STANDBY_LINE)
        return out

    async def _partition_ft(self, hold: float) -> dict[str, Any]:
        """Blackhole the FT link both ways for ``hold`` s, then mend it. The standby
        may take over (fencing the active by epoch): then the fenced one is restarted."""
        old_active = self.active
        for proxy in self.ft_proxy.values():
            proxy.blackhole()
        took = await self._takeover(hold)
        for proxy in self.ft_proxy.values():
            proxy.restore()
        out: dict[str, Any] = {"hold": hold, "failover": took is not None}
        if took is not None:
            out["takeover_seconds"] = round(took, 3)
            self.active = self.standby
            out["fenced_exit"] = await self._exit_code(self.member(old_active), 30)
            await self._launch(old_active, STANDBY_LINE)
        return out

    async def _partition_clients(self, hold: float) -> dict[str, Any]:
        for proxy in self.client_proxy.values():
            proxy.cut()
        await asyncio.sleep(hold)
        for proxy in self.client_proxy.values():
            proxy.restore()
        return {"hold": hold, "failover": False}

    async def _disk_full(self, hold: float) -> dict[str, Any]:
        if self.tmpfs is None:
            raise ClusterError("disk-full needs the store on a tmpfs (Cluster(disk_full=True))")
        self._filler = self.tmpfs / "filler"
        filled = 0
        with open(self._filler, "wb") as f, contextlib.suppress(OSError):
            chunk = b"\0" * (1 << 20)
            while True:
                filled += f.write(chunk)
                f.flush()
        await asyncio.sleep(hold)
        self._release_disk()
        return {"hold": hold, "filled_bytes": filled, "failover": False}

    def _release_disk(self) -> None:
        if self._filler is not None:
            self._filler.unlink(missing_ok=True)
            self._filler = None

    async def _exit_code(self, proc: ServerProcess, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while proc.returncode is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return proc.returncode

    async def heal(self) -> None:
        """After the last fault: proxies forward, disk has room, both members up."""
        for proxy in (*self.ft_proxy.values(), *self.client_proxy.values()):
            proxy.restore()
        self._release_disk()
        for role in ROLES:
            proc = self.member(role)
            if proc.returncode is not None:
                await self._launch(role, ACTIVE_LINE if role == self.active else STANDBY_LINE)

    # -- two-actives sampler --------------------------------------------------------

    async def _sample_ready(self) -> None:
        # Must outlive every fault: a dead sampler would stop watching in silence.
        while True:
            try:
                a = await self._ready("a")
                b = await self._ready("b")
                if a and b and await self._ready("a"):
                    # a before and after b: both were ready while b answered.
                    self.both_ready.append(time.time())
                self.samples += 1
            except Exception as exc:
                self.sampler_errors.append(f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(0.1)

    async def _ready(self, role: str) -> bool:
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.health[role]), 0.3)
        except (TimeoutError, OSError, RuntimeError):   # uvloop: RuntimeError when closed
            return False
        try:
            w.write(b"GET /isReady HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            line = await asyncio.wait_for(r.readline(), 0.3)
            return line.split()[1:2] == [b"200"]
        except (TimeoutError, OSError, IndexError, RuntimeError):
            return False
        finally:
            w.close()
