"""``stomp_listen``: STOMP 1.2 clients on the same destinations, ACLs and store.

A ``StompConnection`` is a ``ClientConnection`` with a different wire: STOMP
frames are translated into the same sessions, producers and consumers the
emsfast protocol builds (``ops``), so routing, limits, persistence, redelivery
and authorization are shared code. Each SUBSCRIBE gets its own session (its ack
mode); each BEGIN a transacted session. Messages cross over as TextMessage
(``content-type: text/*``, or no content-type and a UTF-8 body) or BytesMessage,
with the other STOMP headers as string properties.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

from emsfast._core.dispatch import Delivery
from emsfast.config.urls import ListenURL
from emsfast.consts import (
    ACK_CLIENT,
    ACK_NONE,
    ACK_TRANSACTED,
)
from emsfast.errors import AuthError, EmsfastError, ErrorCode, InvalidError
from emsfast.log import log
from emsfast.server import ops
from emsfast.server.connection import WRITE_AT, ClientConnection
from emsfast.server.holders import Holder
from emsfast.server.messages import ServerMessage
from emsfast.server.session import Consumer, Producer, Session
from emsfast.server.stompconv import message_headers, parse_destination, stomp_message
from emsfast.server.stompframes import Frame, StompParser, encode_frame

if TYPE_CHECKING:
    from emsfast.server.server import Server

# STOMP has no credit frames: a client-ack subscription may hold this many unacked
# messages (ActiveMQ's activemq.prefetchSize header overrides it).
DEFAULT_CLIENT_PREFETCH = 1000
# Heart-beats faster than this are not worth a timer per connection.
MIN_HEARTBEAT_MS = 1000


class _Sub:
    __slots__ = ("id", "session", "consumer", "ack", "dest")

    def __init__(self, sub_id: str, session: Session, consumer: Consumer, ack: str,
                 dest: str) -> None:
        self.id = sub_id
        self.session = session
        self.consumer = consumer
        self.ack = ack
        self.dest = dest


class StompConnection(ClientConnection):
    def __init__(self, server: Server) -> None:
        super().__init__(server)
        # Before CONNECT is accepted a frame is bounded by the pre-login budget.
        self.parser = StompParser(min(server.config.max_preauth_bytes, server.max_msg_size),
                                  "max_preauth_bytes")
        self._shut = False
        self.out = bytearray()
        self.connected = False
        self.subs: dict[str, _Sub] = {}
        self._sub_of: dict[int, _Sub] = {}      # consumer id -> its subscription
        self._logging_in = False
        self._waiting: list[Frame] = []         # frames that arrived during the login
        self.tx: dict[str, tuple[Session, list[tuple[_Sub, Delivery]]]] = {}
        self._auto: set[Consumer] = set()
        self._receipts: dict[int, str] = {}     # send seq -> receipt id
        self._ids = 0
        self._send_session = self._new_session(ACK_NONE)
        self._producers: dict[tuple[int, str, str], Producer] = {}
        self._hb_send: asyncio.TimerHandle | None = None
        self._hb_check: asyncio.TimerHandle | None = None
        self._last_read = 0.0

    # -- transport -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.host = peer[0] if peer else "?"
        server = self.server
        limit = server.config.max_connections
        # max_connections counts every client, whichever protocol it speaks.
        if limit and len(server.connections) + len(server.stomp_connections) >= limit:
            log.warning(f"[{self.host}]: STOMP connect failed: max_connections ({limit}) reached")
            self.write("ERROR", {"message": f"max_connections ({limit}) reached"})
            self.close()
            return
        server.stomp_connections.add(self)
        self._handshake_timer = self.loop.call_later(
            self._handshake_seconds(), self._handshake_expired)

    def _handshake_expired(self) -> None:
        if not self.connected:
            self.stomp_error("no CONNECT frame within handshake_timeout "
                             f"({self._handshake_seconds():g} s)")

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.closing:
            return
        self._last_read = self.loop.time()
        if not self.connected and not self._logging_in:
            over = self.over_preauth(len(data))
            if over is not None:
                self.stomp_error(over)
                return
        parser = self.parser
        self._stomp_frames(parser.feed(data))
        if parser.error is not None and not self.closing:
            self.stomp_error(f"malformed frame: {parser.error}")

    def _stomp_frames(self, frames: list[Frame]) -> None:
        for i, frame in enumerate(frames):
            if self.closing:
                break
            if self._logging_in:
                self._waiting.extend(frames[i:])
                break
            try:
                self._on_frame(frame)
            except EmsfastError as exc:
                self.stomp_error(str(exc), frame.get("receipt"))
            except (KeyError, TypeError, ValueError) as exc:
                self.stomp_error(f"bad {frame.command} frame: {exc}", frame.get("receipt"))
        self._schedule_flush()

    @property
    def closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.stomp_connections.discard(self)
        for timer in (self._hb_send, self._hb_check):
            if timer is not None:
                timer.cancel()
        for _session, acks in self.tx.values():
            self.redeliver([d for _, d in acks])   # acked inside a transaction never committed
        super().connection_lost(exc)

    def write(self, command: str, headers: dict[str, str], body: bytes = b"") -> None:
        self.out += encode_frame(command, headers, body)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if len(self.out) > self._room:
            self._check_unsent()
        if not self._flush_pending and (self.out or self._auto):
            self._flush_pending = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        self._write_out()
        if not self.paused:
            self._refill()

    def _write_out(self) -> None:
        if self.transport is not None and self.out:
            self.transport.write(bytes(self.out))
            self.out.clear()
            self._check_unsent()

    # -- max_client_pending_bytes, reading -----------------------------------

    def _queued(self) -> int:
        return len(self.out)

    def _closed(self) -> bool:
        return self._shut or self.closing

    def _drop_output(self) -> None:
        self.out.clear()

    def _fatal(self, code: ErrorCode, text: str) -> None:
        self.write("ERROR", {"message": text[:200], "content-type": "text/plain"},
                   text.encode())
        self.close()

    def _may_read(self) -> bool:
        return not self._logging_in and not self.closing

    def _refill(self) -> None:
        # Auto-ack subscriptions get a prefetch worth per loop turn while the
        # socket keeps up: the transport's buffer is the only flow control.
        for consumer in self._auto:
            if consumer.credit < consumer.prefetch:
                consumer.credit = consumer.prefetch
                consumer.holder.dispatch()

    def resume_writing(self) -> None:
        self.paused = False
        if self.transport is not None and self._may_read():
            self.transport.resume_reading()
        self._refill()
        self._schedule_flush()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._shut = True
            self._flush()
            self._close_transport()

    def stomp_error(self, text: str, receipt: str | None = None) -> None:
        headers = {"message": text[:200], "content-type": "text/plain"}
        if receipt:
            headers["receipt-id"] = receipt
        log.warning(f"[{self.user}@{self.host}]: STOMP error: {text}; connection closed")
        self.write("ERROR", headers, text.encode())
        self.close()

    def _receipt(self, frame: Frame) -> None:
        receipt = frame.get("receipt")
        if receipt is not None:
            self.write("RECEIPT", {"receipt-id": receipt})

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _new_session(self, ack_mode: int) -> Session:
        self._check_objects("SUBSCRIBE" if ack_mode != ACK_TRANSACTED else "BEGIN")
        session = Session(self._next_id(), ack_mode)
        self.sessions[session.id] = session
        return session

    # -- frames --------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        command = frame.command
        if command in ("CONNECT", "STOMP"):
            self._on_connect(frame)
            return
        if not self.connected:
            raise InvalidError(f"{command} before CONNECT")
        self._handlers[command](self, frame)

    def _on_connect(self, frame: Frame) -> None:
        if self.connected or self._logging_in:
            raise InvalidError("CONNECT sent twice")
        versions = (frame.get("accept-version") or "1.0").split(",")
        if "1.2" not in versions:
            self.write("ERROR", {"version": "1.2", "content-type": "text/plain",
                                 "message": "Supported protocol versions are 1.2"})
            self.close()
            return
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self.user = frame.get("login") or "anonymous"
        heart_beat = frame.get("heart-beat") or "0,0"
        if not self.server.authz.enabled:
            self._accept_stomp(heart_beat)
            return
        self._logging_in = True     # frames that follow wait; reading is paused
        if self.transport is not None:
            self.transport.pause_reading()
        password = frame.get("passcode")

        async def check() -> None:
            try:
                await self.server.authz.login(self.user, password, self.host)
            except AuthError as exc:
                log.warning(f"[{self.user}@{self.host}]: STOMP connect failed: {exc}")
                self.stomp_error(str(exc))
                return
            self._logging_in = False
            try:
                self._accept_stomp(heart_beat)
            except EmsfastError as exc:
                self.stomp_error(str(exc))
                return
            waiting, self._waiting = self._waiting, []
            self._stomp_frames(waiting)
            if self.transport is not None and not self.closing and not self.paused:
                self.transport.resume_reading()

        task = asyncio.ensure_future(check())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _accept_stomp(self, heart_beat: str) -> None:
        try:
            cx, cy = (int(v) for v in heart_beat.split(","))
        except ValueError:
            raise InvalidError(f"bad heart-beat header {heart_beat!r}") from None
        # We send as often as the client asks (cy) and expect what it offers (cx).
        send_ms = max(cy, MIN_HEARTBEAT_MS) if cy > 0 else 0
        recv_ms = max(cx, MIN_HEARTBEAT_MS) if cx > 0 else 0
        self.connected = True
        self.parser.max_body = self.server.max_msg_size
        self.parser.limit_name = "max_msg_size"
        self.write("CONNECTED", {"version": "1.2", "server": f"emsfast/{self.server.name}",
                                 "session": str(self.conn_id),
                                 "heart-beat": f"{send_ms},{recv_ms}"})
        if send_ms:
            self._hb_send = self.loop.call_later(send_ms / 1000, self._beat, send_ms / 1000)
        if recv_ms:
            # STOMP 1.2 suggests a margin for timing inaccuracy: allow twice the period.
            self._hb_check = self.loop.call_later(2 * recv_ms / 1000, self._check_beat,
                                                  2 * recv_ms / 1000)
        if "CONNECT" in self.server.tracer:
            log.info(f"[{self.user}@{self.host}]: STOMP connected")

    def _beat(self, period: float) -> None:
        if self.transport is None:
            return
        if not self.out:
            self.transport.write(b"\n")
        self._hb_send = self.loop.call_later(period, self._beat, period)

    def _check_beat(self, window: float) -> None:
        if self.transport is None:
            return
        idle = self.loop.time() - self._last_read
        if idle >= window:
            self.stomp_error(f"no heart-beat for {idle:.1f}s")
            return
        self._hb_check = self.loop.call_later(window - idle, self._check_beat, window)

    def _stomp_disconnect(self, frame: Frame) -> None:
        receipt = frame.get("receipt")
        if receipt is None:
            self.close()
            return
        # The receipt says every earlier frame took effect: wait for the store.
        fut = self.store.flush()

        def done(_: asyncio.Future[None]) -> None:
            self.write("RECEIPT", {"receipt-id": receipt})
            self.close()

        fut.add_done_callback(done)

    # -- send ----------------------------------------------------------------

    def _producer(self, session: Session, kind: str, name: str) -> Producer:
        key = (session.id, kind, name)
        producer = self._producers.get(key)
        if producer is None:
            self._check_objects("SEND")     # one producer per destination sent to
            pid = self._next_id()
            ops.producer_create(self, {"session": session.id, "producer": pid,
                                       "dest_type": kind, "dest": name})
            producer = self.producers[pid]
            self._producers[key] = producer
        return producer

    def _stomp_send(self, frame: Frame) -> None:
        kind, name = parse_destination(frame.get("destination"))
        txid = frame.get("transaction")
        if txid is not None:
            if txid not in self.tx:
                raise InvalidError(f"transaction {txid!r} was not begun")
            session = self.tx[txid][0]
        else:
            session = self._send_session
        producer = self._producer(session, kind, name)
        msg = stomp_message(frame, kind, name, self.broker.next_message_id(), self.conn_id)
        dest = producer.queue if producer.queue is not None else producer.topic
        assert dest is not None
        if dest.props.expiration_ms:
            msg.expiration = self.now_ms() + dest.props.expiration_ms
        seq = self._next_id()
        if session.transacted:
            session.tx_sends.append((producer, seq, msg, False))
            self._receipt(frame)    # held until COMMIT; the COMMIT receipt means stored
            return
        receipt = frame.get("receipt")
        if receipt is not None:
            self._receipts[seq] = receipt   # answered by _confirm once stored
        self.route(producer, seq, msg, receipt is not None)

    def _confirm(self, pid: int, seq: int, mid: int) -> None:
        receipt = self._receipts.pop(seq, None)
        if receipt is not None:
            self.write("RECEIPT", {"receipt-id": receipt})

    def send_fail(self, pid: int, seq: int, mode: int, code: int, text: str) -> None:
        if self.transport is not None:
            self.stomp_error(f"send failed: {text}", self._receipts.pop(seq, None))

    # -- subscribe / deliver / ack -------------------------------------------

    def _stomp_subscribe(self, frame: Frame) -> None:
        sub_id = frame.get("id")
        if not sub_id:
            raise InvalidError("SUBSCRIBE needs an id header")
        if sub_id in self.subs:
            raise InvalidError(f"subscription id {sub_id!r} is already in use")
        dest = frame.get("destination")
        kind, name = parse_destination(dest)
        ack = frame.get("ack") or "auto"
        if ack not in ("auto", "client", "client-individual"):
            raise InvalidError(f"ack must be auto, client or client-individual, got {ack!r}")
        session = self._new_session(ACK_NONE if ack == "auto" else ACK_CLIENT)
        cid = self._next_id()
        req: dict[str, Any] = {"session": session.id, "consumer": cid, "dest_type": kind,
                               "dest": name}
        if frame.get("selector"):
            req["selector"] = frame.get("selector")
        try:
            ops.consumer_create(self, req)
        except EmsfastError:
            self.sessions.pop(session.id, None)
            raise
        consumer = self.consumers[cid]
        if ack == "auto":
            self._auto.add(consumer)
        else:
            prefetch = frame.get("activemq.prefetchSize")
            consumer.prefetch = consumer.credit = (
                max(1, int(prefetch)) if prefetch else DEFAULT_CLIENT_PREFETCH)
        assert dest is not None
        self.subs[sub_id] = self._sub_of[cid] = _Sub(sub_id, session, consumer, ack, dest)
        self._receipt(frame)

    def _stomp_unsubscribe(self, frame: Frame) -> None:
        sub = self.subs.pop(frame.get("id") or "", None)
        if sub is None:
            raise InvalidError(f"no subscription with id {frame.get('id')!r}")
        self._auto.discard(sub.consumer)
        self._sub_of.pop(sub.consumer.id, None)
        ops.close_session(self, sub.session)
        self._receipt(frame)

    def deliver(self, consumer: Consumer, holder: Holder, msg: ServerMessage,
                count: int) -> None:
        tag = self._next_tag
        self._next_tag = tag + 1
        session = consumer.session
        if self.closing:
            # Closed inside the holder's dispatch loop: connection_lost returns it.
            session.unacked[tag] = Delivery(consumer, holder, msg, count)
            return
        sub = self._sub_of.get(consumer.id)
        headers, body = message_headers(msg, count, self.server.name)
        if sub is not None:
            headers["subscription"] = sub.id
            headers["destination"] = headers.get("destination") or sub.dest
        if session.no_ack:
            holder.acked(msg)
            if msg.persistent:
                self.store.remove_message(holder.key, msg.id)
        else:
            session.unacked[tag] = Delivery(consumer, holder, msg, count)
            headers["ack"] = f"{session.id}.{tag}"
        self.out += encode_frame("MESSAGE", headers, body)
        if msg.size > self._largest:
            self._largest = msg.size
        if len(self.out) > WRITE_AT or len(self.out) > self._room:
            self._write_out()       # meets pause_writing within one dispatch (WRITE_AT)
        self._schedule_flush()

    def _take(self, frame: Frame) -> tuple[_Sub, list[Delivery]]:
        """The deliveries an ACK/NACK covers, removed from their session."""
        ack_id = frame.get("id") or ""
        sid_text, _, tag_text = ack_id.partition(".")
        if not (sid_text.isdigit() and tag_text.isdigit()):
            raise InvalidError(f"unknown ack id {ack_id!r}")
        sid, tag = int(sid_text), int(tag_text)
        sub = next((s for s in self.subs.values() if s.session.id == sid), None)
        if sub is None or tag not in sub.session.unacked:
            raise InvalidError(f"message {ack_id!r} is not awaiting an ack")
        unacked = sub.session.unacked
        # client: cumulative, everything up to this one; client-individual: just it.
        tags = [t for t in unacked if t <= tag] if sub.ack == "client" else [tag]
        return sub, [unacked.pop(t) for t in tags]

    def _stomp_ack(self, frame: Frame) -> None:
        sub, taken = self._take(frame)
        txid = frame.get("transaction")
        if txid is not None:
            if txid not in self.tx:
                raise InvalidError(f"transaction {txid!r} was not begun")
            self.tx[txid][1].extend((sub, d) for d in taken)
        else:
            self._ack(taken)
        self._credit(sub, len(taken))
        self._receipt(frame)

    def _ack(self, deliveries: list[Delivery]) -> None:
        for d in deliveries:
            d.holder.acked(d.msg)
            if d.msg.persistent:
                self.store.remove_message(d.holder.key, d.msg.id)

    def _stomp_nack(self, frame: Frame) -> None:
        sub, taken = self._take(frame)
        self._credit(sub, len(taken))
        self.redeliver(taken)
        self._receipt(frame)

    def _credit(self, sub: _Sub, n: int) -> None:
        consumer = sub.consumer
        consumer.credit = min(consumer.credit + n, consumer.prefetch)
        self.loop.call_soon(consumer.holder.dispatch)

    # -- transactions ----------------------------------------------------------

    def _stomp_begin(self, frame: Frame) -> None:
        txid = frame.get("transaction")
        if not txid:
            raise InvalidError("BEGIN needs a transaction header")
        if txid in self.tx:
            raise InvalidError(f"transaction {txid!r} is already active")
        self.tx[txid] = (self._new_session(ACK_TRANSACTED), [])
        self._receipt(frame)

    def _end(self, frame: Frame) -> tuple[Session, list[tuple[_Sub, Delivery]]]:
        txid = frame.get("transaction") or ""
        entry = self.tx.pop(txid, None)
        if entry is None:
            raise InvalidError(f"transaction {txid!r} was not begun")
        return entry

    def _stomp_commit(self, frame: Frame) -> None:
        session, acks = self._end(frame)
        result = ops.session_commit(self, {"session": session.id})
        self._drop_tx_session(session)
        self._ack([d for _, d in acks])
        if result is None:
            self._receipt(frame)
            return

        async def finish() -> None:
            try:
                await result
            except EmsfastError as exc:
                self.stomp_error(str(exc), frame.get("receipt"))
                return
            self._receipt(frame)

        task = asyncio.ensure_future(finish())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _stomp_abort(self, frame: Frame) -> None:
        session, acks = self._end(frame)
        ops.session_rollback(self, {"session": session.id})
        self._drop_tx_session(session)
        self.redeliver([d for _, d in acks])
        self._receipt(frame)

    def _drop_tx_session(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        for key in [k for k in self._producers if k[0] == session.id]:
            producer = self._producers.pop(key)
            self.producers.pop(producer.id, None)

    _handlers: dict[str, Any] = {
        "SEND": _stomp_send, "SUBSCRIBE": _stomp_subscribe, "UNSUBSCRIBE": _stomp_unsubscribe,
        "ACK": _stomp_ack, "NACK": _stomp_nack, "BEGIN": _stomp_begin,
        "COMMIT": _stomp_commit, "ABORT": _stomp_abort, "DISCONNECT": _stomp_disconnect,
    }


class StompListener:
    def __init__(self, server: Server, url: ListenURL) -> None:
        self._server = server
        self._url = url
        self._listener: asyncio.Server | None = None

    async def start(self) -> None:
        server = self._server
        self._listener = await server.loop.create_server(
            lambda: StompConnection(server), self._url.host or None, self._url.port,
            reuse_address=True, backlog=1024)
        shown = self._url.host or socket.gethostname()
        for sock in self._listener.sockets:
            ip, bound = sock.getsockname()[:2]
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            log.info(f"Accepting STOMP connections on stomp://{shown}/{ip}:{bound}.")

    async def stop(self) -> None:
        if self._listener is None:
            return
        self._listener.close()
        for conn in list(self._server.stomp_connections):
            if isinstance(conn, StompConnection):
                conn.close()
        await self._listener.wait_closed()


__all__ = ["StompConnection", "StompListener", "parse_destination"]
