"""The FT link between the two members of a pair (EMS.md 1.2, 1.3, 1.10).

The member that dials ``ft_active`` opens a normal emsfast connection whose
HELLO says ``ft_peer: True`` and names its server; with authorization enabled it
logs in as the user named like the server, with the server ``password``. The
WELCOME tells it the peer's FT state. While the peer is active, both sides send
a HEARTBEAT frame every ``ft_heartbeat`` seconds; every frame received counts as
a heartbeat, and a lost link is reported at once.

``PeerLink`` is the dialling side; ``peer_refusal`` and ``PeerBeat`` serve the
receiving side inside ``server/connection.py``.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from emsfast._version import __version__
from emsfast.consts import HELLO_MAGIC, PROTOCOL_VERSION
from emsfast.errors import ConnectionClosedError, EmsfastError
from emsfast.ft.digest import config_digest, describe, digest_differences
from emsfast.link.protocol import ClientProtocol
from emsfast.link.urls import ServerUrl
from emsfast.log import log
from emsfast.tls import tls_hint

if TYPE_CHECKING:
    from emsfast.config.tibemsd import TibemsdConfig


STORE_ID_FILE = "emsfast.id"


def store_id(store_dir: str) -> str:
    """The identity of a store directory ('' before its first activation)."""
    try:
        with open(os.path.join(store_dir, STORE_ID_FILE)) as f:
            return f.read().strip()
    except OSError:
        return ""


def ensure_store_id(store_dir: str) -> str:
    """Give the store an identity the first time a member activates on it: the
    standby compares it with what it sees in its own store directory, which
    catches two members that do not actually share their store."""
    current = store_id(store_dir)
    if current:
        return current
    new = uuid.uuid4().hex
    tmp = os.path.join(store_dir, STORE_ID_FILE + ".tmp")
    with open(tmp, "w") as f:
        f.write(new + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(store_dir, STORE_ID_FILE))
    return new


def store_mismatch(config: TibemsdConfig, peer_url: str, peer_id: object) -> str | None:
    """Why the peer's store is not ours (None: same, or not known yet)."""
    if not isinstance(peer_id, str) or not peer_id:
        return None
    mine = store_id(config.store)
    if mine == peer_id:
        return None
    return (f"FT peer '{peer_url}' uses another store: its store id is {peer_id}, "
            f"'{os.path.abspath(config.store)}' has {mine or 'none'}; the members do not "
            "share their store directory, so a failover would lose every stored message")


def peer_hello(config: TibemsdConfig) -> dict[str, Any]:
    # The password travels only when the peer checks it (EMS.md 1.10).
    return {
        "magic": HELLO_MAGIC, "proto": PROTOCOL_VERSION, "ft_peer": True,
        "server": config.server, "user": config.server,
        "password": config.password or None, "lang": "python", "version": __version__,
        "digest": config_digest(config),
    }


def peer_refusal(config: TibemsdConfig, hello: dict[str, Any]) -> str | None:
    """Why the receiving member refuses an FT peer's HELLO (None: accept)."""
    if not config.ft_active:
        return "this server is not configured for fault tolerance (ft_active is empty)"
    name = hello.get("server")
    if name != config.server:
        return (f"FT peer has server name {name!r}, this server is {config.server!r}; "
                "both members of a pair must use the same server name")
    return None


def peer_welcome(config: TibemsdConfig, hello: dict[str, Any], host: str) -> dict[str, Any]:
    """What the receiving member adds to an accepted peer's WELCOME; logs an FT
    configuration error when the peer's configuration digest differs."""
    mine = config_digest(config)
    differ = digest_differences(mine, hello.get("digest"))
    if differ:
        log.error(describe(differ, f"at {host}"))
    return {"store_id": store_id(config.store), "digest": mine}


class PeerLink:
    """The dialling side: connect, learn the peer's state, heartbeat while it is active."""

    def __init__(self, loop: asyncio.AbstractEventLoop, url: ServerUrl, hello: dict[str, Any],
                 heartbeat: float, on_heartbeat: Callable[[], None],
                 on_lost: Callable[[str], None], tls: ssl.SSLContext | None = None,
                 server_hostname: str = "") -> None:
        self.loop = loop
        self.url = url
        # ssl:// peers: the initiator's ft_ssl_* context (EMS.md 1.11); the receiver
        # checks us with its own ssl_* settings, as for any client.
        self._tls = tls
        self._server_hostname = server_hostname or url.host
        self._hello = hello
        self._heartbeat = heartbeat
        self._on_heartbeat = on_heartbeat
        self._on_lost = on_lost
        self._proto: ClientProtocol | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.welcome: dict[str, Any] = {}

    async def connect(self, timeout: float) -> str:
        """The peer's FT state ("active", "standby", ...); raises OSError,
        TimeoutError or EmsfastError when it cannot be reached or refuses."""
        proto: ClientProtocol | None = None
        try:
            tls_args: dict[str, Any] = {}
            if self._tls is not None:
                tls_args = {"ssl": self._tls, "ssl_handshake_timeout": timeout,
                            "server_hostname": self._server_hostname}
            async with asyncio.timeout(timeout):
                _, proto = await self.loop.create_connection(
                    lambda: ClientProtocol(self.loop, self._hello), self.url.host,
                    self.url.port, **tls_args)
                info = await proto.welcome
        except (ssl.SSLError, ConnectionResetError, ConnectionClosedError) as exc:
            if proto is not None:
                proto.abort(EmsfastError("FT peer connect abandoned"))
            if self._tls is None:
                raise
            # TLS 1.3: the peer checks our ft_ssl_identity after our side of the
            # handshake is done, so its refusal arrives as a closed link.
            raise EmsfastError(f"TLS link to FT peer '{self.url}' failed: {tls_hint(exc)} "
                               f"({exc or type(exc).__name__})") from exc
        except BaseException:
            if proto is not None:
                proto.abort(EmsfastError("FT peer connect abandoned"))
            raise
        self.welcome = info
        state = str(info.get("ft_state", ""))
        if "ft_state" not in info:
            proto.close()
            raise EmsfastError(f"'{self.url}' is not an emsfast FT member (no FT state in "
                               "its answer)")
        if state != "active":
            proto.close()
            return state
        self._proto = proto
        proto.sink = self
        self._beat()
        return state

    def _beat(self) -> None:
        proto = self._proto
        if proto is None or self.closed:
            return
        proto.encoder.heartbeat()
        proto.flush()
        self._timer = self.loop.call_later(self._heartbeat, self._beat)

    # -- FrameSink ----------------------------------------------------------------------

    def frame_received(self, ftype: int, flags: int, body: bytes) -> None:
        # Any frame proves the peer alive; a flood costs one call each, no state.
        self._on_heartbeat()

    def connection_failed(self, exc: EmsfastError) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._proto = None
        if not self.closed:
            self.closed = True
            self._on_lost(str(exc))

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._proto is not None:
            self._proto.close()
            self._proto = None


class PeerBeat:
    """The receiving side: heartbeat an accepted FT peer every ``interval`` seconds."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float,
                 send: Callable[[], None]) -> None:
        self._loop = loop
        self._interval = interval
        self._send = send
        self._timer: asyncio.TimerHandle | None = None
        self._tick()

    def _tick(self) -> None:
        self._send()
        self._timer = self._loop.call_later(self._interval, self._tick)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
