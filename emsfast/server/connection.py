"""One client connection: handshake, frame dispatch, publish, deliver, ack.

The native codec does the byte work; this class routes decoded frames. Frames
produced while handling one read (replies, confirms, deliveries) are appended to
one encoder and written once per event-loop turn.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import TYPE_CHECKING, Any

from emsfast._core.dispatch import Delivery, parse_publish_message
from emsfast._core.framing import (
    FrameDecoder,
    FrameEncoder,
    parse_ack,
    parse_credit,
    unpack_control,
)
from emsfast._core.message import decode_message
from emsfast.bodies import check_body
from emsfast.consts import (
    BODY_MAP,
    FRAME_ACK,
    FRAME_CREDIT,
    FRAME_ERROR,
    FRAME_HEARTBEAT,
    FRAME_HELLO,
    FRAME_OVERHEAD,
    FRAME_PUBLISH,
    FRAME_REFUSED,
    FRAME_REPLY,
    FRAME_REQUEST,
    FRAME_WELCOME,
    HELLO_MAGIC,
    PROTOCOL_VERSION,
    PUBLISH_CONFIRM,
    RELIABLE,
)
from emsfast.errors import (
    AuthError,
    EmsfastError,
    ErrorCode,
    FrameError,
    FrameSizeError,
    InUseError,
    InvalidError,
    LimitError,
    ProtocolError,
    StandbyError,
)
from emsfast.ft.peer import PeerBeat, peer_refusal, peer_welcome
from emsfast.log import log
from emsfast.server import ops
from emsfast.server.browsers import Browser
from emsfast.server.heartbeats import welcome_fields
from emsfast.server.holders import Holder
from emsfast.server.messages import ServerMessage
from emsfast.server.session import Consumer, Producer, Session
from emsfast.server.tls import peer_common_name, use_cert_username

if TYPE_CHECKING:
    from emsfast.selector import Selector
    from emsfast.server.server import Server

_STATE_HELLO, _STATE_OPEN, _STATE_CLOSED, _STATE_AUTH = range(4)
# A closed connection whose client does not read what is still queued (the final
# ERROR among it) is cut after this long, so it cannot hold its memory and its
# unacknowledged messages forever.
DRAIN_GRACE = 5.0
# Deliveries are written to the transport once this much is encoded, so a large
# prefetch meets the transport's flow control (pause_writing) within one dispatch
# instead of encoding a whole backlog first.
WRITE_AT = 256 * 1024
# Requests that make a server-side object for the connection (max_client_objects).
_CREATES = frozenset({"session.create", "producer.create", "consumer.create",
                      "browser.create", "temp.create"})


def _is_tls(data: bytes) -> bool:
    # A TLS handshake record (type 22, version 3.1-3.4) read as a frame header is a
    # size above any max_preauth_bytes: never the start of a valid emsfast HELLO.
    return len(data) >= 3 and data[0] == 0x16 and data[1] == 0x03 and 1 <= data[2] <= 4


class ClientConnection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.broker = server.broker
        self.store = server.store
        self.loop = server.loop
        self.conn_id = server.next_connection_id()
        self.transport: asyncio.Transport | None = None
        self.state = _STATE_HELLO
        self.decoder = FrameDecoder(server.config.max_preauth_bytes)
        self.enc = FrameEncoder()
        self.paused = False
        self._preauth_bytes = 0         # received before login (max_preauth_bytes)
        # Output the encoder may hold before the unsent total is measured against
        # max_client_pending_bytes; recomputed after every write to the transport.
        self._room = server.config.max_client_pending_bytes or sys.maxsize
        # The largest message written to this client: the cap is exceeded by at most
        # one message, so a client that reads can take any message the server accepted.
        self._largest = 0
        self._overflowing = False
        self._drain_timer: asyncio.TimerHandle | None = None
        self._limits_logged: set[str] = set()
        self.user = "anonymous"
        self.host = "?"
        self.client_id: str | None = None
        self.sessions: dict[int, Session] = {}
        self.producers: dict[int, Producer] = {}
        self.consumers: dict[int, Consumer] = {}
        self.browsers: dict[int, Browser] = {}
        self._next_tag = 1
        self._confirms: dict[int, list[tuple[int, int]]] = {}
        self._flush_pending = False
        self._store_waits: dict[asyncio.Future[None], list[tuple[Any, ...]]] = {}
        self._handshake_timer: asyncio.TimerHandle | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self._held: list[tuple[int, int, bytes]] = []  # frames after HELLO during login
        self.cert_user: str | None = None  # CN of a verified client certificate (ssl://)
        self.ft_peer = False            # the other member of the FT pair (ft/peer.py)
        self._peer_beat: PeerBeat | None = None
        self.standby_admin = False      # admitted while not active: read-only
        # An FT client's identity across reconnects (HELLO client_token): its
        # producers' sends are recorded so a resend after failover is dropped.
        self.token: str | None = None
        self.token_key: bytes | None = None
        self.rx = True          # data arrived since the last heartbeat check (heartbeats.py)
        self.silent = 0.0
        self.told_beat = 0.0    # client_heartbeat_server this client learnt in WELCOME

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; duck-type them.
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.host = peer[0] if peer else "?"
        self.cert_user = peer_common_name(transport)
        limit = self.server.config.max_connections
        if limit and len(self.server.connections) >= limit:
            self._refuse(ErrorCode.LIMIT, f"max_connections ({limit}) reached")
            log.warning(f"[{self.host}]: connect failed: max_connections ({limit}) reached")
            return
        self.server.connections[self.conn_id] = self
        self._handshake_timer = self.loop.call_later(
            self._handshake_seconds(), self._handshake_expired)

    def data_received(self, data: bytes) -> None:
        if self.state == _STATE_CLOSED:
            return
        self.rx = True
        if self.state == _STATE_HELLO:
            if not self.decoder.buffered and _is_tls(data):
                log.warning(f"[{self.host}]: connect failed: TLS handshake on a plain tcp:// "
                            "listener (the client used an ssl:// URL?); connection closed")
                # Plain bytes make the client's TLS layer fail at once, not time out.
                self._refuse(ErrorCode.PROTOCOL, "this is a tcp:// listener, not ssl://")
                return
            over = self.over_preauth(len(data))
            if over is not None:
                self._preauth_refusal(over)
                return
        try:
            self._frames(self.decoder.feed(data))
        except FrameSizeError as exc:
            self._frame_too_large(exc)
            return
        except ProtocolError as exc:
            self.protocol_error(str(exc))
            return
        self._schedule_flush()

    def over_preauth(self, n: int) -> str | None:
        """Count ``n`` bytes received before login; the refusal text once over budget."""
        self._preauth_bytes += n
        budget = self.server.config.max_preauth_bytes
        if self._preauth_bytes > budget:
            return (f"{self._preauth_bytes} bytes sent before login exceed "
                    f"max_preauth_bytes ({budget})")
        return None

    def _preauth_refusal(self, text: str) -> None:
        log.warning(f"[{self.host}]: connect failed: {text}; connection closed")
        self._refuse(ErrorCode.LIMIT, text)

    def _frame_too_large(self, exc: FrameSizeError) -> None:
        if self.state != _STATE_OPEN:
            self._preauth_refusal(f"frame of {exc.size} bytes sent before login exceeds "
                                  f"max_preauth_bytes ({exc.limit})")
            return
        text = (f"frame of {exc.size} bytes exceeds max_msg_size "
                f"({self.server.max_msg_size}) plus {FRAME_OVERHEAD} bytes of framing")
        log.warning(f"[{self.user}@{self.host}]: connection closed: {text}")
        self._fatal(ErrorCode.LIMIT, text)

    def limit_hit(self, limit: str, text: str) -> None:
        """Log a refused request or message (trace item LIMITS): once per limit and
        connection, so a client repeating the offence cannot flood the log."""
        if limit not in self._limits_logged and "LIMITS" in self.server.tracer:
            self._limits_logged.add(limit)
            log.warning(f"[{self.user}@{self.host}]: {text}")

    def _frames(self, frames: list[tuple[int, int, bytes]]) -> None:
        for i, (ftype, flags, body) in enumerate(frames):
            if self.state == _STATE_AUTH:
                self._held.extend(frames[i:])  # processed once the login is decided
                return
            if ftype == FRAME_PUBLISH:
                self._on_publish(flags, body)
            elif ftype == FRAME_ACK:
                self._on_ack(body)
            elif ftype == FRAME_CREDIT:
                self._on_credit(body)
            elif ftype == FRAME_REQUEST:
                self._on_request(body)
            elif ftype == FRAME_HELLO:
                self._on_hello(body)
            elif ftype == FRAME_HEARTBEAT:
                pass
            else:
                raise ProtocolError(f"frame type 0x{ftype:02x} is not sent by clients")
            if self.state == _STATE_CLOSED:
                return

    def eof_received(self) -> bool | None:
        if self.decoder.buffered and self.state != _STATE_CLOSED:
            try:
                self.decoder.check_eof()
            except FrameError as exc:
                log.warning(f"[{self.user}@{self.host}]: {exc}")
        return None

    def _may_read(self) -> bool:
        """Whether reading may resume (not during a login, not once closed)."""
        return self.state in (_STATE_HELLO, _STATE_OPEN)

    def pause_writing(self) -> None:
        self.paused = True
        # Stop reading a client that does not read: otherwise each request it sends
        # adds a reply, a confirm or a CREDIT-driven delivery to what we buffer.
        if self.transport is not None and self._may_read():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and self._may_read():
            self.transport.resume_reading()
        for holder in {c.holder for c in self.consumers.values()}:
            holder.dispatch()
        self._schedule_flush()

    def connection_lost(self, exc: Exception | None) -> None:
        was_open = self.state == _STATE_OPEN
        self.state = _STATE_CLOSED
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        if self._peer_beat is not None:
            self._peer_beat.cancel()
        if self.ft_peer and was_open:
            log.warning(f"FT peer at {self.host} disconnected.")
        self.server.connections.pop(self.conn_id, None)
        if self.token is not None:
            self.server.token_lost(self.token)
        if self.client_id is not None and self.server.client_ids.get(self.client_id) is self:
            del self.server.client_ids[self.client_id]
        for session in list(self.sessions.values()):
            ops.close_session(self, session)
        self.broker.temporaries.connection_closed(self.conn_id)
        self.browsers.clear()
        for task in self.tasks:
            task.cancel()
        self.transport = None
        if was_open and "CONNECT" in self.server.tracer:
            log.info(f"[{self.user}@{self.host}]: disconnected")

    # -- output ----------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if len(self.enc) > self._room:
            self._check_unsent()
        if not self._flush_pending and (len(self.enc) or self._confirms):
            self._flush_pending = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if self._confirms:
            for pid, pairs in self._confirms.items():
                self.enc.confirm(pid, pairs)
            self._confirms.clear()
        if self.transport is not None and len(self.enc):
            self.transport.write(self.enc.take())
            self._check_unsent()

    # -- max_client_pending_bytes ---------------------------------------------

    def _queued(self) -> int:
        """Output encoded and not yet handed to the transport."""
        return len(self.enc)

    def _check_unsent(self) -> None:
        """Close the connection if what it has not read exceeds max_client_pending_bytes;
        else recompute how much more the encoder may take before the next check."""
        cap = self.server.config.max_client_pending_bytes
        if not cap:
            self._room = sys.maxsize
            return
        limit = cap + self._largest
        transport = self.transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        unsent = buffered + self._queued()
        if unsent > limit and not self._closed():
            self._overflow(f"{unsent} bytes queued for this client and not read by it "
                           f"exceed max_client_pending_bytes ({cap})")
            return
        self._room = limit - buffered

    def backlog_overflow(self, holder: Holder) -> None:
        """A non-durable subscription of this client holds more than
        max_client_pending_bytes: the client does not keep up with its topic."""
        if not self._closed():
            self._overflow(
                f"{holder.bytes} bytes of messages wait for this client's subscription to "
                f"'{holder.name}', over max_client_pending_bytes "
                f"({self.server.config.max_client_pending_bytes})")

    def _closed(self) -> bool:
        return self.state == _STATE_CLOSED

    def _overflow(self, text: str) -> None:
        if self._overflowing:
            return      # the ERROR written below must not overflow again (STOMP)
        self._overflowing = True
        log.warning(f"[{self.user}@{self.host}]: connection closed: {text}")
        self.paused = True      # its consumers get nothing more
        self._drop_output()
        self._fatal(ErrorCode.LIMIT, text)
        # Give its messages back now, not when the unread socket finally goes: a
        # non-durable subscription would go on filling until then. Next turn, as
        # this may run inside a holder's dispatch loop.
        self.loop.call_soon(self._release)

    def _release(self) -> None:
        for session in list(self.sessions.values()):
            ops.close_session(self, session)

    def _drop_output(self) -> None:
        self.enc.take()         # never given to the kernel; unacked deliveries come back
        self._confirms.clear()

    def _fatal(self, code: ErrorCode, text: str) -> None:
        """Send a connection-level ERROR and close."""
        self.enc.control(FRAME_ERROR, {"rid": None, "code": int(code), "text": text})
        self.close()

    def _close_transport(self) -> None:
        transport = self.transport
        assert transport is not None
        transport.close()
        if transport.get_write_buffer_size():
            self._drain_timer = self.loop.call_later(DRAIN_GRACE, transport.abort)

    def reply(self, rid: Any, result: dict[str, Any] | None = None) -> None:
        obj: dict[str, Any] = {"rid": rid}
        if result:
            obj.update(result)
        self.enc.control(FRAME_REPLY, obj)
        self._schedule_flush()

    def error(self, rid: Any, exc: EmsfastError) -> None:
        self.enc.control(FRAME_ERROR, {"rid": rid, "code": int(exc.code), "text": str(exc)})
        self._schedule_flush()

    def _refuse(self, code: ErrorCode, text: str) -> None:
        self.enc.control(FRAME_REFUSED, {"code": int(code), "text": text})
        self.close()

    def close(self) -> None:
        """Write what is queued, then close."""
        if self.state == _STATE_CLOSED:
            return
        self.state = _STATE_CLOSED
        if self.transport is not None:
            self._flush()
            self._close_transport()

    def abort(self) -> None:
        """Drop the link at once, unflushed: nothing queued for it is sent."""
        if self.state == _STATE_CLOSED:
            return
        self.state = _STATE_CLOSED
        if self.transport is not None:
            self.transport.abort()

    def protocol_error(self, text: str) -> None:
        log.warning(f"[{self.user}@{self.host}]: protocol error: {text}; connection closed")
        self._fatal(ErrorCode.PROTOCOL, f"protocol error: {text}")

    def _handshake_expired(self) -> None:
        if self.state == _STATE_HELLO:
            text = f"no login within handshake_timeout ({self._handshake_seconds():g} s)"
            log.warning(f"[{self.host}]: connect failed: {text}; connection closed")
            self._refuse(ErrorCode.PROTOCOL, text)

    def _handshake_seconds(self) -> float:
        return self.server.config.handshake_seconds

    # -- handshake -------------------------------------------------------------

    def _on_hello(self, body: bytes) -> None:
        if self.state != _STATE_HELLO:
            raise ProtocolError("HELLO sent twice")
        hello = unpack_control(body)
        if hello.get("magic") != HELLO_MAGIC:
            raise ProtocolError("HELLO without the emsfast magic; not an emsfast client")
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        user = hello.get("user") or "anonymous"
        self.user = str(user)
        given = hello.get("user")
        by_cert = self.cert_user is not None and use_cert_username(
            self.server.config, given if isinstance(given, str) else None)
        if by_cert:
            self.user = str(self.cert_user)
        if hello.get("proto") != PROTOCOL_VERSION:
            self._refuse(ErrorCode.VERSION,
                         f"protocol version {hello.get('proto')!r} not supported "
                         f"(server speaks {PROTOCOL_VERSION})")
            return
        if hello.get("ft_peer"):
            why = peer_refusal(self.server.config, hello)
            if why is not None:
                log.warning(f"[{self.user}@{self.host}]: FT peer refused: {why}")
                self._refuse(ErrorCode.NOT_ALLOWED, why)
                return
            self.ft_peer = True
        if self.server.authz.enabled:
            self._login(hello, by_cert)
            return
        self._accept(hello)

    def _login(self, hello: dict[str, Any], by_cert: bool = False) -> None:
        """Check user and password off the loop; frames that follow HELLO wait.

        A user named by a verified certificate skips the password: the TLS
        handshake authenticated it (ssl_use_cert_username).
        """
        self.state = _STATE_AUTH
        if self.transport is not None:
            self.transport.pause_reading()
        password = hello.get("password")

        async def check() -> None:
            try:
                if by_cert:
                    self.server.authz.check_cert_user(self.user)
                else:
                    await self.server.authz.login(
                        self.user, password if isinstance(password, str) else None, self.host)
            except AuthError as exc:
                log.warning(f"[{self.user}@{self.host}]: connect failed: {exc}")
                self._refuse(ErrorCode.AUTH, str(exc))
                return
            if self.state != _STATE_AUTH:
                return  # closed meanwhile
            self.state = _STATE_HELLO
            self._accept(hello)
            held, self._held = self._held, []
            if self.state != _STATE_OPEN:
                return  # refused after login (client id in use)
            try:
                self._frames(held)
            except ProtocolError as exc:
                self.protocol_error(str(exc))
                return
            if self.transport is not None and self.state == _STATE_OPEN and not self.paused:
                self.transport.resume_reading()
            self._schedule_flush()

        task = asyncio.ensure_future(check())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _standby_refusal(self) -> bool:
        """Refuse a client while not active (EMS.md 1.8); admins and the peer pass."""
        if self.ft_peer or self.server.ft_state == "active":
            return False
        authz = self.server.authz
        admin = (authz.state.acl.is_administrator(self.user) if authz.enabled
                 else self.user == "admin")
        if admin:
            self.standby_admin = True
            return False
        log.warning(f"[{self.user}@{self.host}]: connect failed: server in standby mode")
        self._refuse(ErrorCode.STANDBY, "server in standby mode")
        return True

    def _accept(self, hello: dict[str, Any]) -> None:
        if self._standby_refusal():
            return
        token = hello.get("client_token")
        if isinstance(token, str) and token:
            self.token, self.token_key = token, token.encode() + b"\x00"
            self.server.token_returned(token)
        client_id = hello.get("client_id")
        if client_id is not None:
            client_id = str(client_id)
            old = self.server.client_ids.get(client_id)
            if old is not None and self.token is not None and old.token == self.token:
                old.close()     # the same client reconnecting: its old link is dead
            elif client_id in self.server.client_ids:
                self._refuse(ErrorCode.IN_USE, f"client id '{client_id}' is already in use")
                return
            self.client_id = client_id
            self.server.client_ids[client_id] = self
        self.state = _STATE_OPEN
        self.decoder.max_frame = self.server.max_msg_size + FRAME_OVERHEAD
        self.enc.control(FRAME_WELCOME, {
            "proto": PROTOCOL_VERSION, "server": self.server.name, "conn_id": self.conn_id,
            "max_msg_size": self.server.max_msg_size, "ft_state": self.server.ft_state,
            "max_selector_length": self.server.config.max_selector_length,
            **(peer_welcome(self.server.config, hello, self.host) if self.ft_peer
               else welcome_fields(self.server)),
        })
        self.told_beat = self.server.config.client_heartbeat_server
        if self.ft_peer:
            log.info(f"FT peer '{hello.get('server')}' at {self.host} connected "
                     f"(this server is {self.server.ft_state}).")
            if self.server.ft_state == "active":
                hb = self.server.config.ft_heartbeat
                self._peer_beat = PeerBeat(self.loop, hb, self.send_heartbeat)
        if "CONNECT" in self.server.tracer:
            log.info(f"[{self.user}@{self.host}]: connected")

    @property
    def is_open(self) -> bool:
        return self.state == _STATE_OPEN

    def send_heartbeat(self) -> None:
        self.enc.heartbeat()
        self._schedule_flush()

    def _require_open(self) -> None:
        if self.state != _STATE_OPEN:
            raise ProtocolError("first frame must be HELLO")

    # -- requests --------------------------------------------------------------

    def _on_request(self, body: bytes) -> None:
        self._require_open()
        req = unpack_control(body)
        rid = req.get("rid")
        op = req.get("op")
        handler = ops.HANDLERS.get(op) if isinstance(op, str) else None
        try:
            if handler is None:
                raise InvalidError(f"unknown request op {op!r}")
            if self.standby_admin and op not in ("admin.command", "ping"):
                raise StandbyError(f"'{op}' is refused: server in standby mode")
            if op in _CREATES:
                self._check_objects(op)
            result = handler(self, req)
        except EmsfastError as exc:
            self.error(rid, exc)
            return
        except (KeyError, TypeError, ValueError) as exc:
            self.error(rid, InvalidError(f"bad '{op}' request: {exc!r}"))
            return
        if asyncio.isfuture(result) or asyncio.iscoroutine(result):
            task = asyncio.ensure_future(self._finish(rid, result))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            self.reply(rid, result)

    def _check_objects(self, op: str) -> None:
        """max_client_objects: sessions, producers, consumers, browsers and temporary
        destinations of one connection, each costing the server memory."""
        cap = self.server.config.max_client_objects
        if not cap:
            return
        temps = self.broker.temporaries.by_conn.get(self.conn_id, ())
        have = (len(self.sessions) + len(self.producers) + len(self.consumers)
                + len(self.browsers) + len(temps))
        if have >= cap:
            text = f"{op} refused: this connection has {have} objects, max_client_objects ({cap})"
            self.limit_hit("max_client_objects", text)
            raise LimitError(text)

    async def _finish(self, rid: Any, pending: Any) -> None:
        try:
            result = await pending
        except EmsfastError as exc:
            self.error(rid, exc)
        else:
            self.reply(rid, result)

    # -- publish ---------------------------------------------------------------

    def _on_publish(self, flags: int, body: bytes) -> None:
        self._require_open()
        pid, seq, msg = parse_publish_message(body, self.broker.next_message_id(),
                                              self.conn_id)
        confirm = bool(flags & PUBLISH_CONFIRM)
        producer = self.producers.get(pid)
        if producer is None:
            self.send_fail(pid, seq, msg.delivery_mode, ErrorCode.NOT_FOUND,
                           f"producer {pid} does not exist (its creation failed or it was closed)")
            return
        if msg.size > self.server.max_msg_size:
            text = (f"message of {msg.size} bytes exceeds max_msg_size "
                    f"({self.server.max_msg_size})")
            self.limit_hit("max_msg_size", f"message refused: {text}")
            self.send_fail(pid, seq, msg.delivery_mode, ErrorCode.LIMIT, text)
            return
        body_type = msg.blob[0]     # the blob's first byte (protocol.md §5)
        if body_type >= BODY_MAP:
            # Map/Stream bodies are the only ones clients decode structurally:
            # refuse one too deep here, so no consumer gets a message it cannot read.
            try:
                check_body(body_type, decode_message(msg.blob)[7])
            except (InvalidError, FrameError) as exc:
                self.limit_hit("body", f"message refused: {exc}")
                self.send_fail(pid, seq, msg.delivery_mode, ErrorCode.INVALID, str(exc))
                return
        if confirm and self.token_key is not None and self.server.sends.resend(
                self.token_key + pid.to_bytes(4, "big"), seq,
                lambda err: self._resend_answer(pid, seq, msg.delivery_mode, err)):
            return      # a resend after failover or reconnect: answered from the original
        dest = producer.queue if producer.queue is not None else producer.topic
        assert dest is not None
        if dest.props.expiration_ms:
            # The destination's lifetime overrides the producer's (EMS.md 5.4).
            msg.expiration = self.now_ms() + dest.props.expiration_ms
        session = producer.session
        if session.transacted:
            session.tx_sends.append((producer, seq, msg, confirm))
            if confirm:
                self._confirm(pid, seq, msg.id)
            return
        self.route(producer, seq, msg, confirm)

    def route(self, producer: Producer, seq: int, msg: ServerMessage, confirm: bool) -> None:
        """Hand ``msg`` to its destination; confirm once it is stored if asked."""
        holder = producer.queue
        if holder is not None:
            if holder.deleted:
                self.send_fail(producer.id, seq, msg.delivery_mode, ErrorCode.NOT_FOUND,
                               f"temporary queue '{holder.name}' was deleted")
                return
            try:
                holder.admit(msg.size)
            except LimitError as exc:
                self.limit_hit(f"admit {holder.name}", f"message refused: {exc}")
                self.send_fail(producer.id, seq, msg.delivery_mode, exc.code, str(exc))
                return
            if msg.persistent:
                store_name = self.broker.store_name(holder.props)
                fut = self.store.put_message(store_name, holder.key, msg.id, msg.blob)
                self._note_send(store_name, producer.id, seq, fut)
                self._wait_store(fut, (holder, msg, producer.id, seq, confirm))
                return
            holder.enqueue(msg)
            if confirm:
                self._confirm(producer.id, seq, msg.id)
            return
        topic = producer.topic
        assert topic is not None
        if topic.deleted:
            self.send_fail(producer.id, seq, msg.delivery_mode, ErrorCode.NOT_FOUND,
                           f"temporary topic '{topic.name}' was deleted")
            return

        def after_store(fut: asyncio.Future[None] | None, err: Exception | None) -> None:
            if err is not None:
                code = err.code if isinstance(err, EmsfastError) else ErrorCode.INTERNAL
                self.send_fail(producer.id, seq, msg.delivery_mode, code, str(err))
            elif fut is not None:
                # Durables stored it: record the send in the same batch, as for
                # queues, so a resend after failover is not stored twice.
                self._note_send(self.broker.store_name(topic.props), producer.id, seq, fut)
                self._wait_store(fut, (None, msg, producer.id, seq, confirm))
            elif confirm:
                self._confirm(producer.id, seq, msg.id)

        self.broker.route_topic(topic, msg, after_store)

    def _note_send(self, store_name: str, pid: int, seq: int,
                   fut: asyncio.Future[None]) -> None:
        """FT clients: record the send with the message (resends.py)."""
        if self.token_key is not None:
            origin = self.token_key + pid.to_bytes(4, "big")
            self.store.note_send(store_name, origin, seq)
            self.server.sends.storing(origin, seq, fut)

    def _resend_answer(self, pid: int, seq: int, mode: int, err: BaseException | None) -> None:
        if self.state == _STATE_CLOSED:
            return      # the client will resend again wherever it goes next
        if err is None:
            self._confirm(pid, seq, 0)
        else:
            self.send_fail(pid, seq, mode, ErrorCode.STORE, f"store failed: {err}")
        self._schedule_flush()

    def _wait_store(self, fut: asyncio.Future[None], item: tuple[Any, ...]) -> None:
        waits = self._store_waits.get(fut)
        if waits is None:
            waits = self._store_waits[fut] = []
            fut.add_done_callback(self._stored)
        waits.append(item)

    def _stored(self, fut: asyncio.Future[None]) -> None:
        items = self._store_waits.pop(fut, ())
        err = None if fut.cancelled() else fut.exception()
        for holder, msg, pid, seq, confirm in items:
            if err is not None or fut.cancelled():
                if holder is not None:
                    holder.acked(msg)
                log.error(f"Failed to store message {msg.id}: {err or 'cancelled'}")
                self.send_fail(pid, seq, msg.delivery_mode, ErrorCode.STORE,
                               f"store failed: {err or 'cancelled'}")
                continue
            if holder is not None:
                holder.enqueue(msg)
            if confirm:
                self._confirm(pid, seq, msg.id)
        self._schedule_flush()

    def _confirm(self, pid: int, seq: int, mid: int) -> None:
        pairs = self._confirms.get(pid)
        if pairs is None:
            self._confirms[pid] = [(seq, mid)]
        else:
            pairs.append((seq, mid))

    def send_fail(self, pid: int, seq: int, mode: int, code: int, text: str) -> None:
        # RELIABLE sends get no answer at all, not even failures (EMS.md 5.5).
        if mode == RELIABLE or self.state == _STATE_CLOSED:
            return
        self.enc.send_fail(pid, seq, int(code), text)
        self._schedule_flush()

    # -- deliver / ack ---------------------------------------------------------

    def deliver(self, consumer: Consumer, holder: Holder, msg: ServerMessage,
                count: int) -> None:
        tag = self._next_tag
        self._next_tag = tag + 1
        session = consumer.session
        if self.state == _STATE_CLOSED:
            # Closed inside the holder's dispatch loop: connection_lost returns it.
            session.unacked[tag] = Delivery(consumer, holder, msg, count)
            return
        if session.no_ack:
            holder.acked(msg)
            if msg.persistent:
                self.store.remove_message(holder.key, msg.id)
        else:
            session.unacked[tag] = Delivery(consumer, holder, msg, count)
            if count == 1 and msg.persistent and holder.key[0] != "s":
                # Marked delivered, so a restart redelivers it with JMSRedelivered.
                self.store.mark_delivered(holder.key, msg.id)
        self.enc.deliver(consumer.id, count, tag, msg.id, msg.blob)
        if msg.size > self._largest:
            self._largest = msg.size
        queued = len(self.enc)
        if queued > WRITE_AT or queued > self._room:
            self._flush()       # and measures against max_client_pending_bytes
            return
        if not self._flush_pending:
            self._flush_pending = True
            self.loop.call_soon(self._flush)

    def _on_credit(self, body: bytes) -> None:
        self._require_open()
        cid, n = parse_credit(body)
        consumer = self.consumers.get(cid)
        if consumer is None:
            return      # closed meanwhile; credit for it is moot
        consumer.credit = min(consumer.credit + n, consumer.prefetch)
        consumer.holder.dispatch()

    def _on_ack(self, body: bytes) -> None:
        self._require_open()
        sid, tags = parse_ack(body)
        session = self.sessions.get(sid)
        if session is None:
            return
        unacked = session.unacked
        if session.transacted:
            for tag in tags:
                d = unacked.pop(tag, None)
                if d is not None:
                    session.tx_acked.append(d)
            return
        remove = self.store.remove_message
        for tag in tags:
            d = unacked.pop(tag, None)
            if d is None:
                continue        # already acked (dups_ok) or returned on recover
            d.holder.acked(d.msg)
            if d.msg.persistent:
                remove(d.holder.key, d.msg.id)

    def redeliver(self, deliveries: list[Delivery]) -> None:
        """Return unacked deliveries to their holders, flagged as redelivered."""
        holders: set[Holder] = set()
        for d in sorted(deliveries, key=lambda d: d.msg.id, reverse=True):
            holder = d.holder
            limit = holder.props.max_redelivery
            if limit and d.count >= limit:
                holder.acked(d.msg)
                self.broker.discard(holder, d.msg, "maxRedelivery")
                continue
            if d.msg.persistent:
                self.store.set_delivery_count(holder.key, d.msg.id, d.count)
            if holder.props.redelivery_delay_ms:
                holder.park(d.msg, d.count)
                continue
            holder.restore(d.msg, d.count)
            holders.add(holder)
        for holder in holders:
            holder.dispatch()

    # -- helpers for ops -------------------------------------------------------

    def last_tag(self) -> int:
        """The most recent delivery tag issued on this connection."""
        return self._next_tag - 1

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def compile_selector(self, text: str | None) -> Selector | None:
        """A selector this client sent, held to max_selector_length."""
        from emsfast.selector import compile_selector

        limit = self.server.config.max_selector_length
        if limit and text is not None and len(text) > limit:
            self.limit_hit("max_selector_length",
                           f"selector refused: {len(text)} characters exceed "
                           f"max_selector_length ({limit})")
        return compile_selector(text, limit)

    def durable_key(self, name: str) -> str:
        return f"{self.client_id}:{name}" if self.client_id else name

    def check_client_id_free(self, client_id: str) -> None:
        if client_id in self.server.client_ids:
            raise InUseError(f"client id '{client_id}' is already in use")
