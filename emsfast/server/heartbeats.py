"""Client/server heartbeats (EMS.md 2.5).

``server_heartbeat_client`` (effective 5 s when 0): the server sends every client a
HEARTBEAT that often, so a client with ``client_timeout_server_connection`` notices a
hung or partitioned server and fails over. ``server_timeout_client_connection``
(with ``client_heartbeat_server``): the server drops a client it has heard nothing
from for that long. Clients learn all three values in WELCOME.

One timer per server, not per connection: a tick walks the connections.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from emsfast.log import log

if TYPE_CHECKING:
    from emsfast.server.server import Server

DEFAULT_SERVER_HEARTBEAT = 5.0


def welcome_fields(server: Server) -> dict[str, float]:
    c = server.config
    return {"client_heartbeat_server": c.client_heartbeat_server,
            "server_heartbeat_client": c.server_heartbeat_client or DEFAULT_SERVER_HEARTBEAT,
            "client_timeout_server_connection": c.client_timeout_server_connection}


class Heartbeats:
    def __init__(self, server: Server) -> None:
        self.server = server
        c = server.config
        self.beat = c.server_heartbeat_client or DEFAULT_SERVER_HEARTBEAT
        self.timeout = c.server_timeout_client_connection
        # Silence is judged in quarters of the timeout: dropped within 1.25 × of it.
        self.check = self.timeout / 4 if self.timeout else 0.0
        self._timers: list[asyncio.TimerHandle] = []

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timers.append(loop.call_later(self.beat, self._send, loop))
        if self.check:
            self._timers.append(loop.call_later(self.check, self._watch, loop))

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _send(self, loop: asyncio.AbstractEventLoop) -> None:
        for conn in list(self.server.connections.values()):
            if conn.is_open and not conn.ft_peer:   # the FT link beats on its own
                conn.send_heartbeat()
        self._timers[0] = loop.call_later(self.beat, self._send, loop)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        for conn in list(self.server.connections.values()):
            if not conn.is_open or conn.ft_peer:
                continue
            if conn.rx or conn.paused:
                # While its output is backed up we stop reading it (connection.py):
                # unread heartbeats are our doing, max_client_pending_bytes bounds it.
                conn.rx = False
                conn.silent = 0.0
                continue
            conn.silent += self.check
            if conn.silent >= self.timeout:
                log.warning(f"[{conn.user}@{conn.host}]: connection closed: nothing received "
                            f"for {conn.silent:g} s (server_timeout_client_connection "
                            f"{self.timeout:g} s)")
                conn.abort()
        self._timers[1] = loop.call_later(self.check, self._watch, loop)
