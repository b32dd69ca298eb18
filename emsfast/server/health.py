"""``health_check_listen``: ``/isLive``, ``/isReady`` and ``/metrics`` over HTTP/1.1.

A deliberately small server: GET only, no request bodies, bounded request head,
keep-alive with an idle timeout. Probes and Prometheus scrapers need no more, and
anything a peer sends beyond that is refused rather than buffered.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

from emsfast.config.urls import ListenURL
from emsfast.log import log
from emsfast.metrics import Exposition, Histogram

if TYPE_CHECKING:
    from emsfast.server.server import Server

# A probe's request head is ~100 bytes and a scraper's ~300; 8 KiB is what most
# HTTP servers allow and more than any legitimate client sends here.
MAX_HEAD = 8192
MAX_HEADERS = 32
# Long enough for a scraper's keep-alive between 15 s scrapes to be cut cleanly,
# short enough that idle sockets do not pile up.
IDLE_TIMEOUT = 10.0
MAX_REQUESTS_PER_CONNECTION = 1000

FT_STATES = ("active", "standby", "recovering")
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 413: "Content Too Large",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}


def ft_state(server: Server) -> str:
    return str(getattr(server, "ft_state", "active"))


def is_ready(server: Server) -> bool:
    """Ready = the active member of the pair, with recovery done and listeners open."""
    return server.recovered and ft_state(server) == "active"


def render_metrics(server: Server) -> str:
    broker = server.broker
    exp = Exposition()
    exp.family("emsfast_connections", "gauge", "Client connections open.",
               [({"protocol": "emsfast"}, len(server.connections)),
                ({"protocol": "stomp"}, len(server.stomp_connections))])
    queues = sorted(broker.queues.items())
    topics = sorted(broker.topics.items())
    received: list[tuple[dict[str, str], float]] = []
    delivered: list[tuple[dict[str, str], float]] = []
    pending: list[tuple[dict[str, str], float]] = []
    pending_bytes: list[tuple[dict[str, str], float]] = []
    for name, q in queues:
        labels = {"kind": "queue", "destination": name}
        received.append((labels, q.received_total))
        delivered.append((labels, q.delivered_total))
        pending.append((labels, q.count))
        pending_bytes.append((labels, q.bytes))
    for name, t in topics:
        labels = {"kind": "topic", "destination": name}
        subs = t.subscriptions
        received.append((labels, t.published_total))
        delivered.append((labels, sum(s.delivered_total for s in subs)))
        # A topic holds nothing itself; its pending messages wait in subscriptions.
        pending.append((labels, sum(s.count for s in subs)))
        pending_bytes.append((labels, sum(s.bytes for s in subs)))
    exp.family("emsfast_messages_received_total", "counter",
               "Messages accepted into a destination.", received)
    exp.family("emsfast_messages_delivered_total", "counter",
               "Messages handed to consumers (redeliveries included).", delivered)
    exp.family("emsfast_pending_messages", "gauge",
               "Messages held, delivered-but-unacknowledged included.", pending)
    exp.family("emsfast_pending_bytes", "gauge", "Bytes of the pending messages.",
               pending_bytes)
    hist = getattr(server.store, "commit_latency", None)
    if isinstance(hist, Histogram):
        exp.histogram("emsfast_store_commit_seconds", "Store commit (write + sync) latency.",
                      hist)
    state = ft_state(server)
    exp.family("emsfast_ft_state", "gauge", "1 for the server's current FT state.",
               [({"state": s}, 1 if s == state else 0) for s in FT_STATES])
    exp.family("emsfast_ft_failovers_total", "counter",
               "Times this server became active after being standby.",
               [({}, int(getattr(server, "failovers", 0)))])
    exp.family("emsfast_ready", "gauge", "1 when /isReady answers 200.",
               [({}, 1 if is_ready(server) else 0)])
    return exp.text()


class _BadRequest(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class HealthListener:
    """One HTTP listener; ``stop`` closes it and every open connection."""

    def __init__(self, server: Server, url: ListenURL) -> None:
        self._server = server
        self._url = url
        self._listener: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._listener = await asyncio.start_server(
            self._client, self._url.host or None, self._url.port, limit=MAX_HEAD,
            reuse_address=True)
        shown = self._url.host or socket.gethostname()
        for sock in self._listener.sockets:
            ip, bound = sock.getsockname()[:2]
            log.info(f"Health check listening on http://{shown}/{ip}:{bound}.")

    @property
    def ports(self) -> list[int]:
        if self._listener is None:
            return []
        return [s.getsockname()[1] for s in self._listener.sockets]

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if self._listener is not None:
            await self._listener.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                if not await self._one(reader, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            self._clients.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection should close."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IDLE_TIMEOUT)
        except TimeoutError:
            return False
        except asyncio.IncompleteReadError:
            return False
        except asyncio.LimitOverrunError:
            await self._send(writer, 431, "request head too large\n", close=True)
            return False
        try:
            method, path, keep_alive = _parse_head(head)
        except _BadRequest as exc:
            await self._send(writer, exc.status, f"{_REASONS[exc.status]}\n", close=True)
            return False
        if method not in ("GET", "HEAD"):
            await self._send(writer, 405, "only GET\n", close=True, extra=("Allow: GET, HEAD",))
            return False
        status, body, ctype = self._route(path.split("?", 1)[0])
        await self._send(writer, status, body, close=not keep_alive, ctype=ctype,
                         head_only=method == "HEAD")
        return keep_alive

    def _route(self, path: str) -> tuple[int, str, str]:
        server = self._server
        if path == "/isLive":
            return 200, "live\n", "text/plain; charset=utf-8"
        if path == "/isReady":
            if is_ready(server):
                return 200, "ready\n", "text/plain; charset=utf-8"
            state = ft_state(server) if server.recovered else "recovering"
            return 503, f"not ready: {state}\n", "text/plain; charset=utf-8"
        if path == "/metrics":
            return 200, render_metrics(server), "text/plain; version=0.0.4; charset=utf-8"
        return 404, "not found\n", "text/plain; charset=utf-8"

    async def _send(self, writer: asyncio.StreamWriter, status: int, body: str, *,
                    close: bool, ctype: str = "text/plain; charset=utf-8",
                    extra: tuple[str, ...] = (), head_only: bool = False) -> None:
        data = body.encode()
        lines = [f"HTTP/1.1 {status} {_REASONS[status]}", f"Content-Type: {ctype}",
                 f"Content-Length: {len(data)}", "Cache-Control: no-store", *extra]
        if close:
            lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head_only:
            writer.write(data)
        # A scraper that stops reading must not pin a task: give up after the idle time.
        await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT)


def _parse_head(head: bytes) -> tuple[str, str, bool]:
    """(method, path, keep-alive) of a request head; raises _BadRequest."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise _BadRequest(400) from None
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400)
    method, path, version = parts
    if len(lines) - 1 > MAX_HEADERS:
        raise _BadRequest(431)
    keep_alive = version == "HTTP/1.1"
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest(400)
        name = name.lower()
        value = value.strip().lower()
        if name == "connection":
            keep_alive = "close" not in value if version == "HTTP/1.1" else "keep-alive" in value
        elif (name == "content-length" and value != "0") or name == "transfer-encoding":
            raise _BadRequest(413)  # no endpoint takes a body; never read one
    if not path.startswith("/"):
        raise _BadRequest(400)
    return method, path, keep_alive
