"""The server's TLS: ``ssl_*`` for ``ssl://`` listeners, ``ft_ssl_*`` for the FT link.

Files are read and checked through ``emsfast.tls`` (pyOpenSSL/cryptography);
the contexts are stdlib ``ssl.SSLContext`` because asyncio and uvloop carry TLS
only with those (docs/tls.md). The receiving side of an FT link is an ordinary
``ssl://`` listener, so a peer server is validated exactly like a client.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import TYPE_CHECKING, Any

from emsfast.config.syntax import parse_bool
from emsfast.config.tibemsd import TibemsdConfig
from emsfast.config.urls import ListenURL
from emsfast.errors import ConfigError
from emsfast.log import log
from emsfast.tls import (
    apply_identity,
    apply_trusted,
    check_ciphers,
    client_context,
    common_name,
    fingerprint,
    load_identity,
    load_trusted,
    tls_hint,
)

if TYPE_CHECKING:
    from emsfast.server.server import Server

__all__ = ["certificate_fingerprints", "check_ft_tls", "ft_client_context", "ft_server_hostname",
           "peer_common_name", "server_context", "use_cert_username", "TlsListener"]


def _flag(config: TibemsdConfig, name: str, default: bool) -> bool:
    text: str = getattr(config, name)
    if not text:
        return default
    try:
        return parse_bool(text)
    except ValueError as exc:
        file, line = config.source.get(name, (config.path, 0))
        raise ConfigError(f"{file}:{line}: {name}: {exc}", path=file, line=line or None,
                          key=name) from None


def server_context(config: TibemsdConfig) -> tuple[ssl.SSLContext, list[str]]:
    """The context of every ``ssl://`` listener, and warnings (expiring certificate).

    Raises ``ConfigError`` naming the parameter and file when a file is missing,
    not a certificate/key, locked by a wrong password, or the key does not match.
    """
    if not config.ssl_server_identity:
        raise ConfigError(f"{config.path}: ssl_server_identity: required for ssl:// listeners",
                          key="ssl_server_identity")
    identity = load_identity(config.ssl_server_identity, config.ssl_server_key,
                             config.ssl_password, config.ssl_server_issuer,
                             "ssl_server_identity", "ssl_server_key")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    apply_identity(ctx, identity)
    trusted = load_trusted(config.ssl_server_trusted, "ssl_server_trusted")
    require = _flag(config, "ssl_require_client_cert", False)
    if require and not trusted:
        raise ConfigError(f"{config.path}: ssl_require_client_cert is enabled but "
                          "ssl_server_trusted names no CA to check client certificates "
                          "against", key="ssl_server_trusted")
    if trusted:
        apply_trusted(ctx, trusted)
        # Optional still verifies a certificate a client does present.
        ctx.verify_mode = ssl.CERT_REQUIRED if require else ssl.CERT_OPTIONAL
    if config.ssl_server_ciphers:
        check_ciphers(config.ssl_server_ciphers, "ssl_server_ciphers")
        ctx.set_ciphers(config.ssl_server_ciphers)
    _flag(config, "ssl_use_cert_username", False)  # a bad value fails the start
    return ctx, identity.warnings


def ft_client_context(config: TibemsdConfig) -> ssl.SSLContext:
    """The context a server dials its FT peer's ``ssl://`` URL with (EMS.md 1.11).

    ``ft_ssl_verify_host`` → verify_mode, ``ft_ssl_verify_hostname`` →
    check_hostname; pass ``ft_server_hostname(config, url)`` as server_hostname.
    """
    return client_context(
        trusted=config.ft_ssl_trusted, identity=config.ft_ssl_identity,
        key=config.ft_ssl_private_key, password=config.ft_ssl_password,
        issuers=config.ft_ssl_issuer,
        verify_host=_flag(config, "ft_ssl_verify_host", True),
        verify_hostname=_flag(config, "ft_ssl_verify_hostname", True),
        ciphers=config.ft_ssl_ciphers, prefix="ft_ssl_")


def check_ft_tls(config: TibemsdConfig) -> list[str]:
    """Warnings for an ``ssl://`` ft_active set up by halves (EMS.md 1.13 note)."""
    peers = [u for u in config.ft_active_urls if u.tls]
    if not peers:
        return []
    where = "{}:{}".format(*config.source.get("ft_active", (config.path, 0)))
    out = []
    if not config.ft_ssl_trusted and _flag(config, "ft_ssl_verify_host", True):
        out.append(f"{where}: ft_active {peers[0]} is ssl:// but ft_ssl_trusted is not set; "
                   "the peer's certificate must then chain to the system CAs")
    if not config.ft_ssl_identity:
        out.append(f"{where}: ft_active {peers[0]} is ssl:// but ft_ssl_identity is not set; "
                   "a peer with ssl_require_client_cert refuses the link")
    if not any(u.tls for u in config.listen_urls):
        out.append(f"{where}: ft_active {peers[0]} is ssl:// but this server has no ssl:// "
                   "listen URL for its peer to dial back")
    return out


def ft_server_hostname(config: TibemsdConfig, url: ListenURL) -> str:
    """The name the peer's certificate must carry: ``ft_ssl_expected_hostname`` or the host."""
    return config.ft_ssl_expected_hostname or url.host or "localhost"


def certificate_fingerprints(config: TibemsdConfig) -> dict[str, str]:
    """SHA-256 fingerprints of the identities, for the FT unshared-state digest.

    EMS requires both members to use the same certificates; only parameters that
    are set appear, so two plain-TCP servers compare equal.
    """
    out: dict[str, str] = {}
    for name, key, password in (
        ("ssl_server_identity", config.ssl_server_key, config.ssl_password),
        ("ft_ssl_identity", config.ft_ssl_private_key, config.ft_ssl_password),
    ):
        path: str = getattr(config, name)
        if path:
            key_what = "ssl_server_key" if name.startswith("ssl") else "ft_ssl_private_key"
            ident = load_identity(path, key, password, (), name, key_what)
            out[name] = fingerprint(ident.cert)
    return out


def peer_common_name(transport: Any) -> str | None:
    """The CN of a verified client certificate on ``transport``, if any."""
    sslobj = transport.get_extra_info("ssl_object")
    if sslobj is None:
        return None
    der = sslobj.getpeercert(binary_form=True)
    return common_name(der) if der else None


def use_cert_username(config: TibemsdConfig, given: str | None) -> bool:
    """True if a client's certificate CN replaces the user name it gave.

    Always with ``ssl_use_cert_username``; otherwise only for clients that log in
    as ``ssl_cert_user_specname`` (EMS default ``CERTIFICATE_USER``).
    """
    if _flag(config, "ssl_use_cert_username", False):
        return True
    return bool(given) and given == (config.ssl_cert_user_specname or "CERTIFICATE_USER")


class TlsListener:
    """An ``ssl://`` listener with its own accept loop.

    Each accepted socket is handed to ``loop.connect_accepted_socket(ssl=...)`` so
    the handshake runs in asyncio's or uvloop's native TLS layer, and a failed or
    stalled one raises here, to be logged with the peer and a hint; with
    ``create_server(ssl=...)`` both loops drop it silently, and uvloop cannot
    ``start_tls`` on an accepted server transport. Others keep being served.
    """

    def __init__(self, server: Server, ctx: ssl.SSLContext, host: str, port: int) -> None:
        self._server = server
        self._ctx = ctx
        self._host = host
        self._port = port
        self.sockets: list[socket.socket] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(self._host or None, self._port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        seen = set()
        try:
            for family, kind, proto, _, addr in infos:
                if (family, addr) in seen:
                    continue
                seen.add((family, addr))
                sock = socket.socket(family, kind, proto)
                self.sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind(addr)
                sock.listen(1024)
                sock.setblocking(False)
        except OSError:
            self.close()
            raise
        self._tasks = [asyncio.ensure_future(self._accept(sock)) for sock in self.sockets]

    async def _accept(self, lsock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(lsock)
            except OSError as exc:  # EMFILE and kin: keep the listener, retry shortly
                if lsock.fileno() < 0:
                    return  # closed by stop()
                log.error(f"ssl:// listener: accept failed: {exc}")
                await asyncio.sleep(0.1)
                continue
            task = asyncio.ensure_future(self._handshake(sock))
            self._server.tls_handshakes.add(task)
            task.add_done_callback(self._server.tls_handshakes.discard)

    async def _handshake(self, sock: socket.socket) -> None:
        from emsfast.server.connection import ClientConnection

        try:
            host = str(sock.getpeername()[0])
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            return
        timeout = self._server.config.handshake_seconds
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: ClientConnection(self._server), sock,
                                               ssl=self._ctx, ssl_handshake_timeout=timeout)
        except asyncio.CancelledError:
            sock.close()
            raise
        except (OSError, TimeoutError) as exc:
            sock.close()
            if "longer than" in str(exc) or isinstance(exc, TimeoutError):
                why = f"TLS handshake not completed within handshake_timeout ({timeout:g} s)"
            else:
                why = f"TLS handshake failed: {tls_hint(exc)} ({exc or type(exc).__name__})"
            log.warning(f"[{host}]: connect failed: {why}")

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for sock in self.sockets:
            sock.close()
