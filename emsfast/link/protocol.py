"""The client's asyncio protocol: handshake, frame dispatch and coalesced writes.

Every frame goes into one ``FrameEncoder``; the buffer is written once per event-loop
turn (or early when it grows past ``_EAGER_WRITE``, so a producer that never yields
still hands the kernel bounded chunks and meets ``pause_writing``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, cast

from emsfast._core.framing import FrameDecoder, FrameEncoder, unpack_control
from emsfast.consts import (
    FRAME_ERROR,
    FRAME_HEARTBEAT,
    FRAME_HELLO,
    FRAME_OVERHEAD,
    FRAME_REFUSED,
    FRAME_WELCOME,
    MAX_MSG_SIZE_CEILING,
    MAX_SELECTOR_LENGTH,
    PREAUTH_MAX_FRAME,
)
from emsfast.errors import (
    ConnectionClosedError,
    EmsfastError,
    ErrorCode,
    FrameError,
    ProtocolError,
    error_from_code,
)

__all__ = ["ClientProtocol", "FrameSink", "Pending"]

# Past this many buffered bytes a write happens at once rather than at the turn's end.
_EAGER_WRITE = 256 * 1024


class FrameSink(Protocol):
    """The connection side: receives frames after WELCOME and the loss of the link."""

    def frame_received(self, ftype: int, flags: int, body: bytes) -> None: ...
    def connection_failed(self, exc: EmsfastError) -> None: ...


class Pending(Protocol):
    """An object holding batched ACK/CREDIT state, emitted just before a write."""

    def emit(self, encoder: FrameEncoder) -> None: ...


class ClientProtocol(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, hello: dict[str, Any]) -> None:
        self.loop = loop
        self.encoder = FrameEncoder()
        self.transport: asyncio.Transport | None = None
        self.sink: FrameSink | None = None
        self.welcome: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._hello = hello
        self._decoder = FrameDecoder(PREAUTH_MAX_FRAME)
        self._flush_handle: asyncio.Handle | None = None
        self._pending: dict[int, Pending] = {}
        self._writable = asyncio.Event()
        self._writable.set()
        self._lost: EmsfastError | None = None
        self._rx = True         # data arrived since the last silence check
        self._silent = 0.0
        self._beat_timer: asyncio.TimerHandle | None = None
        self._watch_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.encoder.control(FRAME_HELLO, self._hello)
        self.schedule_flush()

    def data_received(self, data: bytes) -> None:
        self._rx = True
        try:
            frames = self._decoder.feed(data)
        except FrameError as exc:
            self.abort(exc)
            return
        sink = self.sink
        try:
            for ftype, flags, body in frames:
                if sink is not None:
                    sink.frame_received(ftype, flags, body)
                else:
                    self._handshake_frame(ftype, body)
                    sink = self.sink
                if self._lost is not None:
                    return
        except EmsfastError as exc:  # a malformed body from the server
            self.abort(exc)

    def eof_received(self) -> bool | None:
        try:
            self._decoder.check_eof()
        except FrameError as exc:
            self.abort(exc)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost is None:
            why = f": {exc}" if exc is not None else " by the server"
            self._fail(ConnectionClosedError(f"connection closed{why}"))
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # -- handshake -------------------------------------------------------------------

    def _handshake_frame(self, ftype: int, body: bytes) -> None:
        if ftype == FRAME_WELCOME:
            info = unpack_control(body)
            max_msg = info.get("max_msg_size") or MAX_MSG_SIZE_CEILING
            if not isinstance(max_msg, int) or max_msg < 0:
                self.abort(ProtocolError(f"WELCOME has a bad max_msg_size {max_msg!r}"))
                return
            info["max_msg_size"] = max_msg
            # Servers before max_selector_length had the fixed default.
            max_sel = info.get("max_selector_length", MAX_SELECTOR_LENGTH)
            if not isinstance(max_sel, int) or max_sel < 0:
                self.abort(ProtocolError(f"WELCOME has a bad max_selector_length {max_sel!r}"))
                return
            info["max_selector_length"] = max_sel
            self._decoder.max_frame = max_msg + FRAME_OVERHEAD
            if not self.welcome.done():
                self.welcome.set_result(info)
            self._start_heartbeats(info)
        elif ftype == FRAME_REFUSED:
            info = unpack_control(body)
            err = _coded_error(info, "connection refused")
            self._lost = err
            if not self.welcome.done():
                self.welcome.set_exception(err)
            self.close()
        elif ftype == FRAME_ERROR:
            self.abort(_coded_error(unpack_control(body), "server error"))
        elif ftype != FRAME_HEARTBEAT:
            self.abort(ProtocolError(f"unexpected frame type 0x{ftype:02x} before WELCOME"))

    # -- heartbeats (EMS.md 2.5) -----------------------------------------------------

    def _start_heartbeats(self, info: dict[str, Any]) -> None:
        """Beat every ``client_heartbeat_server`` s; give the link up after
        ``client_timeout_server_connection`` s of silence (the server beats every
        ``server_heartbeat_client`` s), so a hung server means failover, not a hang."""
        beat = _seconds(info.get("client_heartbeat_server"))
        timeout = _seconds(info.get("client_timeout_server_connection"))
        if beat:
            self._beat_timer = self.loop.call_later(beat, self._beat, beat)
        if timeout:
            self._watch_timer = self.loop.call_later(timeout / 4, self._watch, timeout)

    def _beat(self, every: float) -> None:
        if self._lost is None:
            self.encoder.heartbeat()
            self.schedule_flush()
            self._beat_timer = self.loop.call_later(every, self._beat, every)

    def _watch(self, timeout: float) -> None:
        if self._lost is not None:
            return
        if self._rx:
            self._rx, self._silent = False, 0.0
        else:
            self._silent += timeout / 4
            if self._silent >= timeout:
                self.abort(ConnectionClosedError(
                    f"no data from the server for {self._silent:g} s "
                    f"(client_timeout_server_connection {timeout:g} s)"))
                return
        self._watch_timer = self.loop.call_later(timeout / 4, self._watch, timeout)

    # -- writing ---------------------------------------------------------------------

    def schedule_flush(self) -> None:
        if len(self.encoder) >= _EAGER_WRITE:
            self.flush()
        elif self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self.flush)

    def add_pending(self, obj: Pending) -> None:
        """Have ``obj.emit`` run before the next write (batched ACK/CREDIT)."""
        self._pending[id(obj)] = obj
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self.flush)

    def emit_pending(self) -> None:
        if self._pending:
            pending = list(self._pending.values())
            self._pending.clear()
            for obj in pending:
                obj.emit(self.encoder)

    def flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.emit_pending()
        data = self.encoder.take()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    @property
    def writable(self) -> bool:
        return self._writable.is_set()

    async def wait_writable(self) -> None:
        """Block a sender while the transport is over its high-water mark."""
        await self._writable.wait()
        if self._lost is not None:
            raise self._lost

    # -- shutdown --------------------------------------------------------------------

    def abort(self, exc: EmsfastError) -> None:
        """Fail everything with ``exc`` and drop the link at once."""
        if self._lost is None:
            self._fail(exc)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Write what is buffered, then close."""
        if self.transport is not None and not self.transport.is_closing():
            self.flush()
            self.transport.close()

    def _fail(self, exc: EmsfastError) -> None:
        self._lost = exc
        for timer in (self._beat_timer, self._watch_timer):
            if timer is not None:
                timer.cancel()
        self._beat_timer = self._watch_timer = None
        self._writable.set()
        if not self.welcome.done():
            self.welcome.set_exception(exc)
        if self.sink is not None:
            self.sink.connection_failed(exc)


def _coded_error(info: dict[str, Any], what: str) -> EmsfastError:
    code, text = info.get("code"), info.get("text")
    if not isinstance(text, str):
        text = what
    if isinstance(code, str):
        # REFUSED may name its code (protocol.md §2: AUTH, STANDBY, ...); ERROR numbers it.
        member = ErrorCode.__members__.get(code)
        return error_from_code(int(member) if member else 0, text)
    if isinstance(code, int):
        return error_from_code(code, text)
    return ProtocolError(f"{what}: {text}")


def _seconds(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and value > 0 else 0.0
