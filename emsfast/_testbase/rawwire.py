"""A blocking, hand-rolled speaker of docs/protocol.md for bad-input tests.

It is written from the protocol document with ``struct`` and ``msgpack`` and does
not use ``emsfast._core``, so it can say things the real codec refuses to say
(oversized lengths, unknown types, truncated frames) and acts as an independent
check of the wire layout.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

import msgpack

from emsfast import consts

HEADER = struct.Struct("<IBBH")  # size, type, flags, reserved
MSG_HEADER = struct.Struct("<BBBBIqq")  # body_type, mode, priority, flags, meta_len, ts, exp


def frame(ftype: int, body: bytes = b"", flags: int = 0, size: int | None = None) -> bytes:
    """One frame; ``size`` overrides the length field (to lie about it)."""
    return HEADER.pack(len(body) if size is None else size, ftype, flags, 0) + body


def control(ftype: int, obj: dict[str, Any]) -> bytes:
    return frame(ftype, msgpack.packb(obj))


def hello(
    user: str | None = None, password: str | None = None, client_id: str | None = None
) -> bytes:
    return control(
        consts.FRAME_HELLO,
        {
            "magic": consts.HELLO_MAGIC,
            "proto": consts.PROTOCOL_VERSION,
            "user": user,
            "password": password,
            "client_id": client_id,
            "lang": "python-raw",
            "version": "0",
        },
    )


def text_blob(
    text: str,
    dest: str,
    *,
    delivery_mode: int = consts.PERSISTENT,
    priority: int = 4,
    properties: dict[str, Any] | None = None,
) -> bytes:
    """A TextMessage blob (protocol.md section 5); ``dest`` like ``"q:orders"``."""
    meta = msgpack.packb([{"dest": dest}, properties])
    head = MSG_HEADER.pack(
        consts.BODY_TEXT, delivery_mode, priority, 0, len(meta), int(time.time() * 1000), 0
    )
    return head + meta + text.encode()


def publish(producer: int, seq: int, blob: bytes, confirm: bool = True) -> bytes:
    body = struct.pack("<IQ", producer, seq) + blob
    return frame(consts.FRAME_PUBLISH, body, consts.PUBLISH_CONFIRM if confirm else 0)


class RawConnection:
    """One TCP connection to the daemon; reads whole frames with a timeout."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self._buf = b""
        self._rid = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_tolerant(self, data: bytes) -> bool:
        """Send, treating a reset by the server (it already gave up on us) as fine."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def _fill(self, n: int, deadline: float) -> bool:
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no frame within {self.timeout}s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return False
            self._buf += chunk
        return True

    def read_frame(self, timeout: float | None = None) -> tuple[int, int, bytes] | None:
        """Next (type, flags, body); None at EOF. TimeoutError when nothing comes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        if not self._fill(HEADER.size, deadline):
            return None
        size, ftype, flags, _ = HEADER.unpack_from(self._buf)
        if not self._fill(HEADER.size + size, deadline):
            return None
        body = self._buf[HEADER.size : HEADER.size + size]
        self._buf = self._buf[HEADER.size + size :]
        return ftype, flags, body

    def read_until_closed(self, timeout: float | None = None) -> list[tuple[int, int, bytes]]:
        """Every frame until the server closes; TimeoutError if it keeps the link open."""
        frames = []
        while (f := self.read_frame(timeout)) is not None:
            frames.append(f)
        return frames

    def login(self, **hello_fields: Any) -> dict[str, Any]:
        self.send(hello(**hello_fields))
        f = self.read_frame()
        if f is None:
            raise ConnectionError("server closed the connection instead of WELCOME")
        ftype, _, body = f
        if ftype != consts.FRAME_WELCOME:
            raise ConnectionError(
                f"expected WELCOME, got frame 0x{ftype:02x}: {msgpack.unpackb(body)!r}"
            )
        result: dict[str, Any] = msgpack.unpackb(body)
        return result

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        """Send a REQUEST, wait for its REPLY (frames for other rids are skipped);
        an ERROR reply is raised as ``RuntimeError(code, text)``."""
        self._rid += 1
        rid = self._rid
        self.send(control(consts.FRAME_REQUEST, {"rid": rid, "op": op, **fields}))
        while True:
            f = self.read_frame()
            if f is None:
                raise ConnectionError(f"server closed the connection during {op}")
            ftype, _, body = f
            if ftype not in (consts.FRAME_REPLY, consts.FRAME_ERROR):
                continue
            msg: dict[str, Any] = msgpack.unpackb(body)
            if msg.get("rid") != rid:
                continue
            if ftype == consts.FRAME_ERROR:
                raise RuntimeError(msg.get("code"), msg.get("text"))
            return msg


def error_texts(frames: list[tuple[int, int, bytes]]) -> list[str]:
    """The ``text`` of every ERROR/REFUSED frame in ``frames``."""
    out = []
    for ftype, _, body in frames:
        if ftype in (consts.FRAME_ERROR, consts.FRAME_REFUSED):
            try:
                out.append(str(msgpack.unpackb(body).get("text")))
            except Exception:  # noqa: BLE001 - a garbled error frame is reported as such
                out.append(f"<undecodable error frame {body!r}>")
    return out
