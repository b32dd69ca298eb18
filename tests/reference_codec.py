"""Pure-Python reference codec for docs/protocol.md, for tests only.

Written straight from the spec with ``struct`` so the Cython codec can be checked
against something that shares none of its code. Errors are plain ValueError.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

HEADER = struct.Struct("<IBBH")
MSG_HEADER = struct.Struct("<BBBBIqq")

HELLO, WELCOME, REFUSED = 0x01, 0x02, 0x03
REQUEST, REPLY, ERROR = 0x10, 0x11, 0x12
PUBLISH, CONFIRM, SEND_FAIL = 0x20, 0x21, 0x22
DELIVER, CREDIT, ACK = 0x30, 0x31, 0x32
HEARTBEAT = 0x40

CONTROL_TYPES = (HELLO, WELCOME, REFUSED, REQUEST, REPLY, ERROR)
FIXED = {PUBLISH: 12, CONFIRM: 8, SEND_FAIL: 14, DELIVER: 24, CREDIT: 8, ACK: 8}
KNOWN = frozenset((*CONTROL_TYPES, *FIXED, HEARTBEAT))
FLAG_MASK = {PUBLISH: 0x01}


def frame(ftype: int, flags: int, body: bytes) -> bytes:
    return HEADER.pack(len(body), ftype, flags, 0) + body


def decode_stream(data: bytes, max_frame: int) -> tuple[list[tuple[int, int, bytes]], bytes]:
    """Every complete frame in ``data`` and the incomplete rest."""
    frames = []
    off = 0
    while len(data) - off >= HEADER.size:
        size, ftype, flags, reserved = HEADER.unpack_from(data, off)
        if ftype not in KNOWN:
            raise ValueError(f"unknown frame type 0x{ftype:02x}")
        if reserved:
            raise ValueError("reserved field")
        if size > max_frame:
            raise ValueError(f"frame of {size} bytes exceeds limit of {max_frame}")
        if flags & ~FLAG_MASK.get(ftype, 0):
            raise ValueError("unknown flags")
        if size < FIXED.get(ftype, 0):
            raise ValueError("short body")
        if len(data) - off - HEADER.size < size:
            break
        start = off + HEADER.size
        frames.append((ftype, flags, data[start : start + size]))
        off = start + size
    return frames, data[off:]


def publish(producer: int, seq: int, flags: int, blob: bytes) -> bytes:
    return frame(PUBLISH, flags, struct.pack("<IQ", producer, seq) + blob)


def deliver(consumer: int, count: int, tag: int, message_id: int, blob: bytes) -> bytes:
    return frame(DELIVER, 0, struct.pack("<IIQQ", consumer, count, tag, message_id) + blob)


def confirm(producer: int, pairs: list[tuple[int, int]]) -> bytes:
    body = struct.pack("<II", producer, len(pairs))
    body += b"".join(struct.pack("<QQ", s, m) for s, m in pairs)
    return frame(CONFIRM, 0, body)


def send_fail(producer: int, seq: int, code: int, text: str) -> bytes:
    return frame(SEND_FAIL, 0, struct.pack("<IQH", producer, seq, code) + text.encode())


def credit(consumer: int, n: int) -> bytes:
    return frame(CREDIT, 0, struct.pack("<II", consumer, n))


def ack(session: int, tags: list[int]) -> bytes:
    body = struct.pack("<II", session, len(tags)) + b"".join(struct.pack("<Q", t) for t in tags)
    return frame(ACK, 0, body)


def heartbeat() -> bytes:
    return frame(HEARTBEAT, 0, b"")


def control(ftype: int, obj: object) -> bytes:
    return frame(ftype, 0, msgpack.packb(obj, use_bin_type=True))


def parse(ftype: int, body: bytes) -> Any:
    """The tuple the matching ``framing.parse_*`` returns, or the control map."""
    if ftype == PUBLISH:
        producer, seq = struct.unpack_from("<IQ", body)
        return producer, seq, body[12:]
    if ftype == DELIVER:
        return (*struct.unpack_from("<IIQQ", body), body[24:])
    if ftype == CONFIRM:
        producer, n = struct.unpack_from("<II", body)
        if len(body) != 8 + 16 * n:
            raise ValueError("CONFIRM length")
        return producer, [struct.unpack_from("<QQ", body, 8 + 16 * i) for i in range(n)]
    if ftype == SEND_FAIL:
        return (*struct.unpack_from("<IQH", body), body[14:].decode())
    if ftype == CREDIT:
        if len(body) != 8:
            raise ValueError("CREDIT length")
        return struct.unpack("<II", body)
    if ftype == ACK:
        session, n = struct.unpack_from("<II", body)
        if len(body) != 8 + 8 * n:
            raise ValueError("ACK length")
        return session, [struct.unpack_from("<Q", body, 8 + 8 * i)[0] for i in range(n)]
    if ftype == HEARTBEAT:
        return None
    return msgpack.unpackb(body, raw=False)


def encode_message(
    body_type: int,
    delivery_mode: int,
    priority: int,
    timestamp: int,
    expiration: int,
    headers: dict[str, Any] | None,
    properties: dict[str, Any] | None,
    body: bytes,
) -> bytes:
    meta = msgpack.packb([headers or None, properties or None], use_bin_type=True)
    head = MSG_HEADER.pack(body_type, delivery_mode, priority, 0, len(meta), timestamp, expiration)
    return head + meta + body


def decode_message(blob: bytes) -> tuple[Any, ...]:
    if len(blob) < MSG_HEADER.size:
        raise ValueError("short blob")
    body_type, mode, priority, _flags, meta_len, ts, exp = MSG_HEADER.unpack_from(blob)
    if body_type > 4 or mode not in (1, 2, 22) or priority > 9:
        raise ValueError("bad header")
    end = MSG_HEADER.size + meta_len
    if end > len(blob):
        raise ValueError("meta overruns blob")
    headers, properties = msgpack.unpackb(blob[MSG_HEADER.size : end], raw=False)
    return body_type, mode, priority, ts, exp, headers, properties, blob[end:]
