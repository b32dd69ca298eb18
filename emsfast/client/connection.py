"""``connect()`` over an FT URL list, and the connection that owns sessions.

The client picks every id (sessions, producers, consumers, request ids), so creating
objects never waits: the REQUEST is pipelined and its REPLY lands in a future the
object awaits on first use (protocol.md §2, §4).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from emsfast._core.framing import (
    parse_confirm,
    parse_deliver,
    parse_send_fail,
    unpack_control,
)
from emsfast._version import __version__
from emsfast.client.failover import ExceptionListener, Failover
from emsfast.consts import (
    FRAME_CONFIRM,
    FRAME_DELIVER,
    FRAME_ERROR,
    FRAME_HEARTBEAT,
    FRAME_REPLY,
    FRAME_REQUEST,
    FRAME_SEND_FAIL,
    HELLO_MAGIC,
    PROTOCOL_VERSION,
)
from emsfast.errors import (
    AuthError,
    ConnectionClosedError,
    EmsfastError,
    InvalidError,
    LimitError,
    ProtocolError,
    StandbyError,
    VersionError,
    error_from_code,
)
from emsfast.link.protocol import ClientProtocol
from emsfast.link.urls import ServerUrl, parse_url_groups
from emsfast.tls import client_context, tls_hint

if TYPE_CHECKING:
    from emsfast.client.consumer import Consumer
    from emsfast.client.producer import Producer
    from emsfast.client.session import Session
    from emsfast.client.temporary import TemporaryQueue, TemporaryTopic

__all__ = ["AllStandbyError", "Connection", "ServersFullError", "connect"]

# Worth trying the next URL: a standby (EMS.md §2.2), a full server, no server or
# not an emsfast server. Every other refusal (AUTH, VERSION, a client id in use, ...)
# is raised at once: the next server would give the same answer.
_NEXT_URL = (StandbyError, LimitError, ConnectionClosedError, ProtocolError, OSError,
             TimeoutError)


async def connect(
    url: str = "tcp://localhost:7222",
    user: str | None = None,
    password: str | None = None,
    client_id: str | None = None,
    *,
    connect_attempt_count: int = 2,
    connect_attempt_delay: float = 0.5,
    handshake_timeout: float = 3.0,
    ssl_trusted: str | Sequence[str] = (),
    ssl_identity: str = "",
    ssl_key: str = "",
    ssl_password: str = "",
    ssl_hostname: str = "",
    ssl_verify_hostname: bool = True,
    ssl_verify_host: bool = True,
    ssl_ciphers: str = "",
    ssl_context: ssl.SSLContext | None = None,
    reconnect_attempt_count: int = 4,
    reconnect_attempt_delay: float = 0.5,
    reconnect_attempt_timeout: float = 0.0,
    exception_listener: ExceptionListener | None = None,
    exception_on_ft_switch: bool = False,
) -> Connection:
    """Connect to the first server of ``url`` (an FT list) that accepts us.

    Each pass tries every URL once, in order; a standby or unreachable server moves
    on to the next URL at once, and ``connect_attempt_delay`` separates passes. An
    AUTH or VERSION refusal is raised at once. When every attempt fails, the
    ``ConnectionClosedError`` lists each URL with its last reason.

    ``+`` separates independent servers (EMS.md 1.9): the first connect walks every
    URL in order; failover stays inside the current group (shared-state pair) and
    moves to the next group only when the whole group is gone.

    With more than one URL the connection fails over (client/failover.py): on
    losing its server it makes ``reconnect_attempt_count`` passes over the list,
    ``reconnect_attempt_delay`` apart (each try limited to
    ``reconnect_attempt_timeout``, 0: ``handshake_timeout``), and rebuilds its
    sessions, producers and consumers. ``exception_listener`` is called when it
    gives up, and on each switch if ``exception_on_ft_switch``.

    ``ssl://`` URLs (docs/tls.md): the server certificate must chain to
    ``ssl_trusted`` (CA files; the system CAs when empty) and name the host dialled,
    or ``ssl_hostname`` when given; ``ssl_verify_hostname=False`` skips the name
    check, ``ssl_verify_host=False`` all checks (encrypted, unauthenticated).
    ``ssl_identity``/``ssl_key``/``ssl_password`` are the client certificate.
    ``ssl_context`` replaces all of these but ``ssl_hostname`` (the FT link uses it).
    A bad file raises ``ConfigError`` naming it.
    """
    groups = parse_url_groups(url)
    urls = [u for group in groups for u in group]
    tls: ssl.SSLContext | None = None
    if urls[0].scheme == "ssl":
        tls = ssl_context or client_context(
            trusted=[ssl_trusted] if isinstance(ssl_trusted, str) else list(ssl_trusted),
            identity=ssl_identity, key=ssl_key, password=ssl_password,
            verify_host=ssl_verify_host, verify_hostname=ssl_verify_hostname,
            ciphers=ssl_ciphers)
    if connect_attempt_count < 1:
        raise InvalidError(f"connect_attempt_count must be at least 1, got {connect_attempt_count}")
    hello: dict[str, Any] = {
        "magic": HELLO_MAGIC,
        "proto": PROTOCOL_VERSION,
        "user": user,
        "password": password,
        "client_id": client_id,
        "lang": "python",
        "version": __version__,
    }
    if len(urls) > 1:
        # Names this client across servers: the successor drops resent duplicates.
        hello["client_token"] = secrets.token_hex(12)
    reasons: dict[str, BaseException] = {}
    for attempt in range(connect_attempt_count):
        if attempt:
            await asyncio.sleep(connect_attempt_delay)
        for server in urls:
            try:
                conn = await _attempt(server, hello, client_id, handshake_timeout, tls,
                                      ssl_hostname)
                if len(urls) > 1:
                    conn._failover = Failover(
                        conn, groups, hello, count=max(1, reconnect_attempt_count),
                        delay=max(0.0, reconnect_attempt_delay),
                        timeout=reconnect_attempt_timeout or handshake_timeout,
                        listener=exception_listener, on_switch=exception_on_ft_switch,
                        tls=tls, ssl_hostname=ssl_hostname)
                return conn
            except (VersionError, AuthError):
                raise  # AuthError is a PermissionError, hence an OSError: not "next URL"
            except _NEXT_URL as exc:
                reasons[str(server)] = exc
    listing = "; ".join(f"{u}: {_reason(exc)}" for u, exc in reasons.items())
    text = f"could not connect to any server ({listing})"
    errors = reasons.values()
    if all(isinstance(e, StandbyError | LimitError) for e in errors):
        # Every server answered: say why with the matching class.
        if any(isinstance(e, LimitError) for e in errors):
            raise ServersFullError(text)
        raise AllStandbyError(text)
    raise ConnectionClosedError(text)


class ServersFullError(LimitError, ConnectionClosedError):
    """connect() failed: the active server is at max_connections (the rest standby)."""


class AllStandbyError(StandbyError, ConnectionClosedError):
    """connect() failed: every server of the list answered that it is a standby."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within handshake_timeout"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


async def _attempt(server: ServerUrl, hello: dict[str, Any], client_id: str | None,
                   timeout: float, tls: ssl.SSLContext | None = None,
                   hostname: str = "") -> Connection:
    loop = asyncio.get_running_loop()
    proto: ClientProtocol | None = None
    tls_args: dict[str, Any] = {}
    if tls is not None:
        tls_args = {"ssl": tls, "ssl_handshake_timeout": timeout,
                    "server_hostname": hostname or server.host}
    try:
        async with asyncio.timeout(timeout):
            _, proto = await loop.create_connection(
                lambda: ClientProtocol(loop, hello), server.host, server.port, **tls_args
            )
            info = await proto.welcome
    except (ssl.SSLError, ConnectionResetError) as exc:
        if proto is not None and tls is None:
            raise
        raise ConnectionClosedError(f"TLS handshake with {server} failed: {tls_hint(exc)} "
                                    f"({exc or type(exc).__name__})") from exc
    except ConnectionClosedError as exc:
        if proto is not None:
            proto.abort(ConnectionClosedError("connect attempt abandoned"))
        if tls is not None:
            # TLS 1.3: the server checks our certificate after our side is done.
            raise ConnectionClosedError(
                f"TLS connection to {server} failed: {tls_hint(exc)} ({exc})") from exc
        if "before" not in str(exc):
            # A TLS listener drops a plain client's HELLO without a word.
            raise ConnectionClosedError(
                f"{exc} before the server's WELCOME (is {server.host}:{server.port} an "
                "ssl:// listener? then use an ssl:// URL)") from exc
        raise
    except BaseException:
        if proto is not None:
            proto.abort(ConnectionClosedError("connect attempt abandoned"))
        raise
    proto_version = info.get("proto")
    if proto_version != PROTOCOL_VERSION:
        proto.abort(VersionError(f"server speaks protocol {proto_version!r}"))
        raise VersionError(
            f"{server}: server speaks protocol {proto_version!r}, this client {PROTOCOL_VERSION}"
        )
    return Connection(proto, server, info, client_id)


class Connection:
    """An established connection. Use ``session()`` to do anything useful."""

    def __init__(self, proto: ClientProtocol, url: ServerUrl, welcome: dict[str, Any],
                 client_id: str | None) -> None:
        self._proto = proto
        self._loop = proto.loop
        self.url = str(url)
        self.server_name: str = str(welcome.get("server", ""))
        self.conn_id: Any = welcome.get("conn_id")
        self.max_msg_size: int = welcome["max_msg_size"]
        self.max_selector_length: int = welcome["max_selector_length"]
        self.client_id = client_id
        self._ids = itertools.count(1)
        self._rids = itertools.count(1)
        self._requests: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._sessions: dict[int, Session] = {}
        self._producers: dict[int, Producer] = {}
        self._consumers: dict[int, Consumer] = {}
        self._closed: EmsfastError | None = None
        self._closing = False
        self._failover: Failover | None = None
        proto.sink = self

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<emsfast.Connection {self.url} server={self.server_name!r} {state}>"

    # -- public ----------------------------------------------------------------------

    def session(self, ack_mode: str = "auto", transacted: bool = False) -> Session:
        """Create a session (no wait: an error surfaces at the session's first use)."""
        from emsfast.client.session import Session

        self.check_open()
        return Session(self, self.next_id(), ack_mode, transacted)

    def temporary_queue(self) -> TemporaryQueue:
        """A temporary queue that only this connection consumes (no wait)."""
        from emsfast.client.temporary import TemporaryQueue

        self.check_open()
        return TemporaryQueue(self._temporary_name(), self)

    def temporary_topic(self) -> TemporaryTopic:
        """A temporary topic that only this connection subscribes to (no wait)."""
        from emsfast.client.temporary import TemporaryTopic

        self.check_open()
        return TemporaryTopic(self._temporary_name(), self)

    def _temporary_name(self) -> str:
        # The server checks this prefix (protocol.md §4, temp.create).
        return f"$TMP$.{self.server_name}.{self.conn_id}.{self.next_id()}"

    @property
    def is_closed(self) -> bool:
        return self._closed is not None

    async def ping(self) -> None:
        """A round trip: every frame the server sent before its reply has arrived."""
        await self.request("ping", {})

    async def unsubscribe(self, name: str) -> None:
        """Delete durable subscription ``name`` of this connection's client id."""
        await self.request("durable.unsubscribe", {"name": name})

    async def close(self) -> None:
        """Flush acks, make one round trip so the server has seen them, then close.

        Idempotent. Operations still pending fail with ``ConnectionClosedError``.
        """
        if self._closed is not None or self._closing:
            return
        self._closing = True
        if self._failover is not None and self._failover.active:
            self._shutdown(ConnectionClosedError("connection closed while failing over"))
            self._proto.close()
            return
        try:
            await asyncio.wait_for(self.ping(), timeout=5.0)
        except (EmsfastError, TimeoutError):
            pass  # closing anyway; pending operations get ConnectionClosedError below
        finally:
            self._shutdown(ConnectionClosedError("connection closed"))
            self._proto.close()

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- used by sessions, producers and consumers -----------------------------------

    @property
    def proto(self) -> ClientProtocol:
        return self._proto

    def next_id(self) -> int:
        return next(self._ids)

    def check_open(self) -> None:
        if self._closed is not None:
            raise ConnectionClosedError(str(self._closed)) from self._closed
        if self._closing:
            raise ConnectionClosedError("connection is closing")

    def request(self, op: str, fields: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        """Pipeline a REQUEST; the future gets the REPLY map or the ERROR's exception.

        Batched ACK/CREDIT state is written first, so a commit or close follows the
        acks the application already gave.
        """
        if self._closed is not None:
            raise ConnectionClosedError(str(self._closed)) from self._closed
        fut: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        if self._failover is not None and self._failover.active:
            self._failover.deferred.append((op, fields, fut))
            return fut
        self._send_request(fut, op, fields)
        return fut

    def _send_request(self, fut: asyncio.Future[dict[str, Any]], op: str,
                      fields: dict[str, Any]) -> None:
        rid = next(self._rids)
        self._requests[rid] = fut
        proto = self._proto
        proto.emit_pending()
        fields["rid"] = rid
        fields["op"] = op
        proto.encoder.control(FRAME_REQUEST, fields)
        proto.schedule_flush()

    # -- failover (client/failover.py) -----------------------------------------------

    def adopt(self, proto: ClientProtocol, url: ServerUrl, welcome: dict[str, Any]) -> None:
        """Continue on ``proto``, a new link to ``url``."""
        self._proto = proto
        proto.sink = self
        self.url = str(url)
        self.server_name = str(welcome.get("server", ""))
        self.conn_id = welcome.get("conn_id")
        self.max_msg_size = welcome["max_msg_size"]
        self.max_selector_length = welcome["max_selector_length"]

    def replay(self, fut: asyncio.Future[dict[str, Any]], op: str,
               fields: dict[str, Any]) -> None:
        """Send ``op`` again on the new link; ``fut`` (if still pending) gets its answer."""
        if fut.done():
            fresh: asyncio.Future[dict[str, Any]] = self._loop.create_future()
            fresh.add_done_callback(_retrieve)
            self._send_request(fresh, op, dict(fields))
        else:
            self._send_request(fut, op, dict(fields))

    @property
    def failovers(self) -> int:
        """How many times this connection moved to another server."""
        return 0 if self._failover is None else self._failover.switches

    def register_producer(self, producer: Producer) -> None:
        self._producers[producer.id] = producer

    def register_consumer(self, consumer: Consumer) -> None:
        self._consumers[consumer.id] = consumer

    def register_session(self, session: Session) -> None:
        self._sessions[session.id] = session

    def forget(self, obj: Session | Producer | Consumer) -> None:
        for table in (self._sessions, self._producers, self._consumers):
            if table.get(obj.id) is obj:
                del table[obj.id]

    # -- FrameSink -------------------------------------------------------------------

    def frame_received(self, ftype: int, flags: int, body: bytes) -> None:
        if ftype == FRAME_DELIVER:
            cid, count, tag, mid, blob = parse_deliver(body)
            consumer = self._consumers.get(cid)
            # A consumer closed locally may still get frames sent before the server
            # saw the close; the server redelivers them elsewhere.
            if consumer is not None:
                consumer.deliver(count, tag, mid, blob)
        elif ftype == FRAME_CONFIRM:
            pid, pairs = parse_confirm(body)
            producer = self._producers.get(pid)
            if producer is not None:
                producer.confirmed(pairs)
        elif ftype == FRAME_REPLY:
            info = unpack_control(body)
            fut = self._requests.pop(_rid(info), None)
            if fut is not None and not fut.done():
                fut.set_result(info)
        elif ftype == FRAME_SEND_FAIL:
            pid, seq, code, text = parse_send_fail(body)
            producer = self._producers.get(pid)
            if producer is not None:
                producer.failed(seq, error_from_code(code, text))
        elif ftype == FRAME_ERROR:
            self._error_frame(unpack_control(body))
        elif ftype == FRAME_HEARTBEAT:
            pass
        else:
            self._proto.abort(ProtocolError(f"unexpected frame type 0x{ftype:02x} from server"))

    def _error_frame(self, info: dict[str, Any]) -> None:
        code, text = info.get("code"), info.get("text")
        err = error_from_code(code if isinstance(code, int) else 0, str(text))
        rid = info.get("rid")
        if rid is None:
            # Connection-level error: the server closes; everything pending gets it.
            self._shutdown(err)
            self._proto.abort(err)
            return
        fut = self._requests.pop(_rid(info), None)
        if fut is not None and not fut.done():
            fut.set_exception(err)

    def connection_failed(self, exc: EmsfastError) -> None:
        failover = self._failover
        if failover is not None and not self._closing and self._closed is None:
            failover.begin(exc)
            return
        self._shutdown(exc)

    def _shutdown(self, exc: EmsfastError) -> None:
        """Fail every pending operation; later calls raise ConnectionClosedError."""
        if self._closed is not None:
            return
        if isinstance(exc, ConnectionClosedError):
            self._closed = exc
        else:
            self._closed = ConnectionClosedError(f"connection closed after server error: {exc}")
        requests, self._requests = self._requests, {}
        for fut in requests.values():
            if not fut.done():
                fut.set_exception(exc)
        for producer in list(self._producers.values()):
            producer.connection_lost(exc)
        for consumer in list(self._consumers.values()):
            consumer.connection_lost(exc)


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()


def _rid(info: dict[str, Any]) -> int:
    rid = info.get("rid")
    if not isinstance(rid, int):
        raise ProtocolError(f"reply without a valid rid: {info!r}")
    return rid
