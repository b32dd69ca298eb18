"""Client failover over an FT URL list (EMS.md §2.2-2.4).

When the link of a connection made with more than one URL breaks, the connection
is not failed: it walks the list with the reconnect parameters, presenting the
same ``client_token``, and rebuilds itself on the new server with the same ids —
sessions, then producers (resending every unconfirmed persistent send with its
original sequence number), then consumers, then requests made meanwhile.

Duplicates: the server records, in the transaction that stores a queue message,
the highest send sequence of each (client token, producer); a resend at or below
it is confirmed and dropped (Store.note_send). Deliveries that come back were
unacknowledged and arrive flagged JMSRedelivered — also those whose delivery
mark the old server had not written yet, because each consumer remembers the ids
it saw before the switch. Transacted sessions: the next commit raises
TransactionRolledBackError. Temporary destinations are not recreated.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from emsfast.errors import (
    AuthError,
    ConnectionClosedError,
    EmsfastError,
    LimitError,
    ProtocolError,
    StandbyError,
    TransactionRolledBackError,
    VersionError,
)
from emsfast.link.protocol import ClientProtocol
from emsfast.link.urls import ServerUrl

if TYPE_CHECKING:
    from emsfast.client.connection import Connection

_NEXT_URL = (StandbyError, LimitError, ConnectionClosedError, ProtocolError, OSError,
             TimeoutError)
# Requests the rebuild re-issues itself (the object's ``ready`` future follows).
_CREATES = frozenset({"session.create", "producer.create", "consumer.create"})

ExceptionListener = Callable[[EmsfastError], None]


class FailoverError(ConnectionClosedError):
    """Given to the exception listener: the connection moved to another server."""


class Failover:
    def __init__(self, conn: Connection, groups: list[list[ServerUrl]], hello: dict[str, Any], *,
                 count: int, delay: float, timeout: float,
                 listener: ExceptionListener | None, on_switch: bool,
                 tls: ssl.SSLContext | None = None, ssl_hostname: str = "") -> None:
        self.conn = conn
        self.tls = tls                  # ssl:// lists redial with the same context
        self.ssl_hostname = ssl_hostname
        self.groups = groups
        self.hello = hello
        self.count = count
        self.delay = delay
        self.timeout = timeout
        self.listener = listener
        self.on_switch = on_switch
        self.active = False
        self.switches = 0
        self.group_moves = 0
        # Requests made while reconnecting: (op, fields, future), sent after the rebuild.
        self.deferred: list[tuple[str, dict[str, Any], asyncio.Future[dict[str, Any]]]] = []
        self._task: asyncio.Task[None] | None = None

    def begin(self, exc: EmsfastError) -> None:
        if self.active:
            return
        self.active = True
        # At once, not at the switch: a commit or ack made meanwhile must already
        # see that the old server's transaction and delivery tags are gone.
        for session in list(self.conn._sessions.values()):
            session.failover()
        for consumer in list(self.conn._consumers.values()):
            consumer.failover_begin()
        self._task = asyncio.ensure_future(self._run(exc))

    async def _run(self, lost: EmsfastError) -> None:
        conn = self.conn
        reasons: dict[str, str] = {}
        hello = dict(self.hello, reconnect=True)
        current = next((i for i, g in enumerate(self.groups)
                        if any(str(u) == conn.url for u in g)), 0)
        # Dual state: the rest of the current pair first; other groups only when
        # the whole group is gone (EMS.md 1.9).
        for n in range(len(self.groups)):
            index = (current + n) % len(self.groups)
            group = self.groups[index]
            if n == 0:
                # The server after the one that failed is its likely successor.
                start = next((i for i, u in enumerate(group) if str(u) == conn.url), -1) + 1
                group = group[start:] + group[:start]
            for _ in range(self.count):
                await asyncio.sleep(self.delay)
                for url in group:
                    if conn._closing:
                        return
                    try:
                        proto, info = await self._dial(url, hello)
                    except (VersionError, AuthError) as exc:
                        self._give_up(exc)
                        return
                    except _NEXT_URL as exc:
                        reasons[str(url)] = str(exc) or type(exc).__name__
                        continue
                    self._switch(proto, url, info, moved=n > 0)
                    return
        listing = "; ".join(f"{u}: {r}" for u, r in reasons.items())
        self._give_up(ConnectionClosedError(
            f"connection lost ({lost}) and reconnecting failed after {self.count} "
            f"attempts ({listing})"))

    async def _dial(self, url: ServerUrl, hello: dict[str, Any]
                    ) -> tuple[ClientProtocol, dict[str, Any]]:
        loop = asyncio.get_running_loop()
        proto: ClientProtocol | None = None
        try:
            tls_args: dict[str, Any] = {}
            if self.tls is not None:
                tls_args = {"ssl": self.tls, "ssl_handshake_timeout": self.timeout,
                            "server_hostname": self.ssl_hostname or url.host}
            async with asyncio.timeout(self.timeout):
                _, proto = await loop.create_connection(
                    lambda: ClientProtocol(loop, hello), url.host, url.port, **tls_args)
                info = await proto.welcome
        except BaseException:
            if proto is not None:
                proto.abort(ConnectionClosedError("reconnect attempt abandoned"))
            raise
        return proto, info

    def _give_up(self, exc: EmsfastError) -> None:
        self.active = False
        conn = self.conn
        deferred, self.deferred = self.deferred, []
        conn._shutdown(exc)
        for _, _, fut in deferred:
            if not fut.done():
                fut.set_exception(exc)
        self._tell(exc)

    def _tell(self, exc: EmsfastError) -> None:
        if self.listener is not None:
            try:
                self.listener(exc)
            except Exception:   # the application's bug must not break the client
                pass

    def _switch(self, proto: ClientProtocol, url: ServerUrl, info: dict[str, Any],
                moved: bool) -> None:
        conn = self.conn
        old = conn._requests
        conn._requests = {}
        conn.adopt(proto, url, info)
        replayed: set[int] = set()
        for session in sorted(conn._sessions.values(), key=lambda s: s.id):
            replayed.add(id(session.ready))
            conn.replay(session.ready, "session.create", session.create_fields)
        for producer in sorted(conn._producers.values(), key=lambda p: p.id):
            replayed.add(id(producer.ready))
            conn.replay(producer.ready, "producer.create", producer.create_fields)
            producer.resend(proto)
        for consumer in sorted(conn._consumers.values(), key=lambda c: c.id):
            replayed.add(id(consumer.ready))
            conn.replay(consumer.ready, "consumer.create", consumer.create_fields)
        # Other requests in flight when the link broke: their outcome is unknown.
        for fut in old.values():
            if id(fut) not in replayed and not fut.done():
                fut.set_exception(ConnectionClosedError(
                    f"connection failed over to {url} while the request was in flight; "
                    "retry it"))
        self.active = False
        deferred, self.deferred = self.deferred, []
        for op, fields, fut in deferred:
            if op in _CREATES:
                continue    # rebuilt above from the object itself
            conn.replay(fut, op, fields)
        self.switches += 1
        proto.schedule_flush()
        if moved:
            # An independent server: messages may have been lost or duplicated.
            self.group_moves += 1
            self._tell(FailoverError(f"connection moved to the independent server group "
                                     f"of {url}; its state is not shared with the old one"))
        elif self.on_switch:
            self._tell(FailoverError(f"connection failed over to {url}"))


def rolled_back() -> TransactionRolledBackError:
    return TransactionRolledBackError(
        "the transaction was rolled back by a failover; consumed messages are redelivered "
        "and sends must be repeated")
