"""Client/server heartbeats (EMS.md 2.5).

``server_heartbeat_client`` (effective 5 s when 0): the server sends every client a
HEARTBEAT that often, so a client with ``client_timeout_server_connection`` notices a
hung or partitioned server and fails over. ``server_timeout_client_connection``
(with ``client_heartbeat_server``): the server drops a client it has heard nothing
from for that long. Clients learn all three values in WELCOME.

Two timers per server, not per connection: a tick walks the connections.
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
    """The parameters are read at every tick: ``set server`` changes apply at once."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._watch_timer: asyncio.TimerHandle | None = None

    def _beat(self) -> float:
        return self.server.config.server_heartbeat_client or DEFAULT_SERVER_HEARTBEAT

    def _step(self) -> float:
        # Silence is judged in quarters of the timeout (dropped within 1.25 × of it);
        # with no timeout the watch only looks for one being set, once a second.
        timeout = self.server.config.server_timeout_client_connection
        return timeout / 4 if timeout else 1.0

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._send_timer = loop.call_later(self._beat(), self._send)
        self._watch_timer = loop.call_later(self._step(), self._watch)

    def stop(self) -> None:
        for timer in (self._send_timer, self._watch_timer):
            if timer is not None:
                timer.cancel()
        self._send_timer = self._watch_timer = None

    def _send(self) -> None:
        assert self._loop is not None
        for conn in list(self.server.connections.values()):
            if conn.is_open and not conn.ft_peer:   # the FT link beats on its own
                conn.send_heartbeat()
        self._send_timer = self._loop.call_later(self._beat(), self._send)

    def _watch(self) -> None:
        assert self._loop is not None
        timeout = self.server.config.server_timeout_client_connection
        step = self._step()
        for conn in list(self.server.connections.values()) if timeout else ():
            if not conn.is_open or conn.ft_peer or not conn.told_beat:
                continue    # a client told no beat at login (set server since) is not judged
            # A paused connection counts too: a live client drains its socket, and
            # once it does we read again (and find its heartbeats); a hung one whose
            # output is backed up must still be dropped, with its prefetched messages.
            if conn.rx:
                conn.rx = False
                conn.silent = 0.0
                continue
            conn.silent += step
            if conn.silent >= timeout:
                log.warning(f"[{conn.user}@{conn.host}]: connection closed: nothing received "
                            f"for {conn.silent:g} s (server_timeout_client_connection "
                            f"{timeout:g} s)")
                conn.abort()
        self._watch_timer = self._loop.call_later(step, self._watch)
