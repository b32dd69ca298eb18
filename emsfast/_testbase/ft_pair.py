"""Two ``emsfastd`` processes configured as an FT pair on one host (tests, bench).

Each member has its own work directory (configuration, log) and a fixed port, the
peer's URL as ``ft_active``, and the *same* store directory.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from pathlib import Path

from emsfast._testbase.server_process import ServerProcess

STANDBY_LINE = "Server is in standby mode"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FTPair:
    def __init__(self, root: Path, *, heartbeat: int = 1, activation: int = 3,
                 params: Mapping[str, str] | None = None, queues: str = ">\n") -> None:
        self.root = root
        self.ports = {"a": free_port(), "b": free_port()}
        self.store = root / "shared-store"
        self.heartbeat = heartbeat
        self.activation = activation
        self.params = dict(params or {})
        self.queues = queues
        self.members: dict[str, ServerProcess] = {}

    def url(self, role: str) -> str:
        return f"tcp://127.0.0.1:{self.ports[role]}"

    @property
    def urls(self) -> str:
        """The client URL list, active candidates in order."""
        return f"{self.url('a')},{self.url('b')}"

    def peer(self, role: str) -> str:
        return "b" if role == "a" else "a"

    def member(self, role: str, params: Mapping[str, str] | None = None,
               queues: str | None = None) -> ServerProcess:
        """A new (not started) process for ``role``; replaces a previous one."""
        merged = {
            "listen": self.url(role),
            "ft_active": self.url(self.peer(role)),
            "store": str(self.store),
            "ft_heartbeat": str(self.heartbeat),
            "ft_activation": str(self.activation),
            **self.params, **(params or {}),
        }
        proc = ServerProcess(self.root / role, params=merged,
                             queues=self.queues if queues is None else queues)
        self.members[role] = proc
        return proc

    def start_active(self, role: str, params: Mapping[str, str] | None = None) -> ServerProcess:
        proc = self.member(role, params).start(wait_ready=False)
        proc.wait_for_line("Server is active.", 20)
        proc.port = self.ports[role]
        return proc

    def start_standby(self, role: str, params: Mapping[str, str] | None = None,
                      queues: str | None = None) -> ServerProcess:
        proc = self.member(role, params, queues).start(wait_ready=False)
        proc.wait_for_line(STANDBY_LINE, 20)
        proc.port = self.ports[role]
        return proc

    def cleanup(self) -> None:
        for proc in self.members.values():
            proc.kill()
            proc.cleanup()
