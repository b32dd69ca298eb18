"""Frame codec (emsfast/_core/framing.pyx) against docs/protocol.md §1 and §3."""

import os
import struct
import sys

import pytest

from emsfast import consts
from emsfast._core import framing
from emsfast._core.framing import FrameDecoder, FrameEncoder
from emsfast.errors import FrameError, ProtocolError

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import reference_codec as ref  # noqa: E402

LIMIT = consts.PREAUTH_MAX_FRAME
PARSERS = {
    consts.FRAME_PUBLISH: framing.parse_publish,
    consts.FRAME_DELIVER: framing.parse_deliver,
    consts.FRAME_CONFIRM: framing.parse_confirm,
    consts.FRAME_SEND_FAIL: framing.parse_send_fail,
    consts.FRAME_CREDIT: framing.parse_credit,
    consts.FRAME_ACK: framing.parse_ack,
}


def _encode_all(enc: FrameEncoder) -> list[tuple[int, object]]:
    """Append one frame of every type; return (type, parsed value) expected back."""
    enc.control(consts.FRAME_HELLO, {"magic": "EMSF", "proto": 1, "user": "admin"})
    enc.control(consts.FRAME_WELCOME, {"proto": 1, "server": "EMS-SERVER", "conn_id": 7})
    enc.control(consts.FRAME_REFUSED, {"code": "STANDBY", "text": "standby"})
    enc.control(consts.FRAME_REQUEST, {"rid": 1, "op": "ping"})
    enc.control(consts.FRAME_REPLY, {"rid": 1})
    enc.control(consts.FRAME_ERROR, {"rid": None, "code": 1, "text": "bad"})
    enc.publish(3, 2**64 - 1, consts.PUBLISH_CONFIRM, b"blob-bytes")
    enc.confirm(3, [(1, 100), (2, 2**64 - 1)])
    enc.send_fail(3, 9, 5, "queue full: é")
    enc.deliver(2**32 - 1, 2, 77, 12345, b"\x00" * 40)
    enc.credit(4, 64)
    enc.ack(1, [5, 6, 2**64 - 1])
    enc.heartbeat()
    return [
        (consts.FRAME_HELLO, {"magic": "EMSF", "proto": 1, "user": "admin"}),
        (consts.FRAME_WELCOME, {"proto": 1, "server": "EMS-SERVER", "conn_id": 7}),
        (consts.FRAME_REFUSED, {"code": "STANDBY", "text": "standby"}),
        (consts.FRAME_REQUEST, {"rid": 1, "op": "ping"}),
        (consts.FRAME_REPLY, {"rid": 1}),
        (consts.FRAME_ERROR, {"rid": None, "code": 1, "text": "bad"}),
        (consts.FRAME_PUBLISH, (3, 2**64 - 1, b"blob-bytes")),
        (consts.FRAME_CONFIRM, (3, [(1, 100), (2, 2**64 - 1)])),
        (consts.FRAME_SEND_FAIL, (3, 9, 5, "queue full: é")),
        (consts.FRAME_DELIVER, (2**32 - 1, 2, 77, 12345, b"\x00" * 40)),
        (consts.FRAME_CREDIT, (4, 64)),
        (consts.FRAME_ACK, (1, [5, 6, 2**64 - 1])),
        (consts.FRAME_HEARTBEAT, None),
    ]


def _parse(ftype: int, body: bytes) -> object:
    if ftype in PARSERS:
        return PARSERS[ftype](body)
    if ftype == consts.FRAME_HEARTBEAT:
        assert body == b""
        return None
    return framing.unpack_control(body)


@pytest.fixture(scope="module")
def stream() -> tuple[bytes, list[tuple[int, int, bytes]]]:
    enc = FrameEncoder()
    _encode_all(enc)
    data = enc.take()
    frames, rest = ref.decode_stream(data, LIMIT)
    assert rest == b""
    return data, frames


def test_every_frame_type_round_trips() -> None:
    enc = FrameEncoder()
    expected = _encode_all(enc)
    frames = FrameDecoder(LIMIT).feed(enc.take())
    assert [f[0] for f in frames] == [t for t, _ in expected]
    assert {f[0] for f in frames} == set(consts.FRAME_TYPES)
    for (ftype, flags, body), (_, value) in zip(frames, expected, strict=True):
        assert flags == (consts.PUBLISH_CONFIRM if ftype == consts.FRAME_PUBLISH else 0)
        assert _parse(ftype, body) == value


def test_encoder_bytes_equal_reference() -> None:
    enc = FrameEncoder()
    _encode_all(enc)
    expected = b"".join(
        [
            ref.control(ref.HELLO, {"magic": "EMSF", "proto": 1, "user": "admin"}),
            ref.control(ref.WELCOME, {"proto": 1, "server": "EMS-SERVER", "conn_id": 7}),
            ref.control(ref.REFUSED, {"code": "STANDBY", "text": "standby"}),
            ref.control(ref.REQUEST, {"rid": 1, "op": "ping"}),
            ref.control(ref.REPLY, {"rid": 1}),
            ref.control(ref.ERROR, {"rid": None, "code": 1, "text": "bad"}),
            ref.publish(3, 2**64 - 1, 1, b"blob-bytes"),
            ref.confirm(3, [(1, 100), (2, 2**64 - 1)]),
            ref.send_fail(3, 9, 5, "queue full: é"),
            ref.deliver(2**32 - 1, 2, 77, 12345, b"\x00" * 40),
            ref.credit(4, 64),
            ref.ack(1, [5, 6, 2**64 - 1]),
            ref.heartbeat(),
        ]
    )
    assert len(enc) == len(expected)
    assert enc.take() == expected


def test_split_at_every_offset(stream: tuple[bytes, list]) -> None:
    data, frames = stream
    for cut in range(len(data) + 1):
        dec = FrameDecoder(LIMIT)
        got = dec.feed(data[:cut])
        assert dec.buffered == cut - sum(8 + len(f[2]) for f in got)
        got += dec.feed(data[cut:])
        assert got == frames, cut
        assert dec.buffered == 0
        dec.check_eof()


def test_split_in_three_at_many_offsets(stream: tuple[bytes, list]) -> None:
    data, frames = stream
    for a in range(0, len(data), 7):
        for b in range(a, len(data) + 1, 5):
            dec = FrameDecoder(LIMIT)
            assert dec.feed(data[:a]) + dec.feed(data[a:b]) + dec.feed(data[b:]) == frames


def test_one_byte_at_a_time(stream: tuple[bytes, list]) -> None:
    data, frames = stream
    dec = FrameDecoder(LIMIT)
    got = []
    for i in range(len(data)):
        got += dec.feed(data[i : i + 1])
    assert got == frames
    assert dec.buffered == 0


@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_feed_accepts_buffers(stream: tuple[bytes, list], kind: type) -> None:
    data, frames = stream
    dec = FrameDecoder(LIMIT)
    assert dec.feed(kind(data[:13])) + dec.feed(kind(data[13:])) == frames


def test_empty_feed() -> None:
    dec = FrameDecoder(LIMIT)
    assert dec.feed(b"") == []
    assert dec.buffered == 0


def test_large_frame_in_small_chunks() -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB
    enc = FrameEncoder()
    enc.publish(1, 1, 0, blob)
    enc.heartbeat()
    data = enc.take()
    dec = FrameDecoder(len(blob) + consts.FRAME_OVERHEAD)
    got = []
    for i in range(0, len(data), 1000):
        got += dec.feed(data[i : i + 1000])
        if len(got) == 0:
            assert dec.buffered == i + len(data[i : i + 1000])
    assert [f[0] for f in got] == [consts.FRAME_PUBLISH, consts.FRAME_HEARTBEAT]
    assert framing.parse_publish(got[0][2]) == (1, 1, blob)


def _header(size: int, ftype: int, flags: int = 0, reserved: int = 0) -> bytes:
    return struct.pack("<IBBH", size, ftype, flags, reserved)


def test_four_gib_claim_rejected_at_header() -> None:
    dec = FrameDecoder(LIMIT)
    with pytest.raises(FrameError, match="frame of 4294967295 bytes exceeds limit of 65536"):
        dec.feed(_header(0xFFFFFFFF, consts.FRAME_PUBLISH))


def test_limit_is_inclusive_and_checked_before_body() -> None:
    dec = FrameDecoder(LIMIT)
    dec.feed(_header(LIMIT, consts.FRAME_REQUEST))
    assert dec.buffered == 8
    with pytest.raises(FrameError, match=f"frame of {LIMIT + 1} bytes exceeds limit of {LIMIT}"):
        FrameDecoder(LIMIT).feed(_header(LIMIT + 1, consts.FRAME_REQUEST))


def test_header_split_then_oversized() -> None:
    dec = FrameDecoder(100)
    head = _header(101, consts.FRAME_REPLY)
    assert dec.feed(head[:5]) == []
    with pytest.raises(FrameError, match="frame of 101 bytes exceeds limit of 100"):
        dec.feed(head[5:])


def test_max_frame_raised_after_construction() -> None:
    body = b"x" * (LIMIT + 10)
    data = ref.frame(consts.FRAME_REQUEST, 0, body)
    with pytest.raises(FrameError, match="exceeds limit of 65536"):
        FrameDecoder(LIMIT).feed(data)
    dec = FrameDecoder(LIMIT)
    dec.feed(ref.heartbeat())
    dec.max_frame = consts.MAX_MSG_SIZE_CEILING + consts.FRAME_OVERHEAD
    assert dec.max_frame == consts.MAX_MSG_SIZE_CEILING + consts.FRAME_OVERHEAD
    assert dec.feed(data) == [(consts.FRAME_REQUEST, 0, body)]
    dec.max_frame = 10
    with pytest.raises(FrameError, match="exceeds limit of 10"):
        dec.feed(data)


def test_max_frame_rejects_negative() -> None:
    with pytest.raises(ValueError):
        FrameDecoder(-1)
    dec = FrameDecoder(LIMIT)
    with pytest.raises(ValueError):
        dec.max_frame = -5


@pytest.mark.parametrize("ftype", [0x00, 0x04, 0x7F, 0xFF])
def test_unknown_type(ftype: int) -> None:
    with pytest.raises(FrameError, match=f"unknown frame type 0x{ftype:02x}"):
        FrameDecoder(LIMIT).feed(_header(0, ftype))


def test_nonzero_reserved() -> None:
    with pytest.raises(FrameError, match="HEARTBEAT frame has reserved field 0x0100, must be 0"):
        FrameDecoder(LIMIT).feed(_header(0, consts.FRAME_HEARTBEAT, reserved=0x100))


def test_unknown_flags() -> None:
    with pytest.raises(FrameError, match="PUBLISH frame has unknown flags 0x02"):
        FrameDecoder(LIMIT).feed(_header(12, consts.FRAME_PUBLISH, flags=0x02))
    with pytest.raises(FrameError, match="CREDIT frame has unknown flags 0x01"):
        FrameDecoder(LIMIT).feed(_header(8, consts.FRAME_CREDIT, flags=0x01))


FIXED = [
    (consts.FRAME_PUBLISH, "PUBLISH", 12),
    (consts.FRAME_CONFIRM, "CONFIRM", 8),
    (consts.FRAME_SEND_FAIL, "SEND_FAIL", 14),
    (consts.FRAME_DELIVER, "DELIVER", 24),
    (consts.FRAME_CREDIT, "CREDIT", 8),
    (consts.FRAME_ACK, "ACK", 8),
]


@pytest.mark.parametrize(("ftype", "name", "fixed"), FIXED)
def test_short_body_rejected_by_decoder(ftype: int, name: str, fixed: int) -> None:
    msg = f"{name} frame body of 3 bytes is shorter than its {fixed}-byte header"
    with pytest.raises(FrameError, match=msg):
        FrameDecoder(LIMIT).feed(ref.frame(ftype, 0, b"abc"))


@pytest.mark.parametrize(("ftype", "name", "fixed"), FIXED)
def test_short_body_rejected_by_parser(ftype: int, name: str, fixed: int) -> None:
    for n in range(fixed):
        msg = f"{name} frame body of {n} bytes is shorter than its {fixed}-byte header"
        with pytest.raises(FrameError, match=msg):
            PARSERS[ftype](b"\x00" * n)


def test_counted_bodies_must_match_count() -> None:
    with pytest.raises(FrameError, match="CONFIRM frame body of 8 bytes does not hold 1 pairs"):
        framing.parse_confirm(struct.pack("<II", 1, 1))
    # A huge count with a tiny body must fail on length, not allocate a list.
    with pytest.raises(FrameError, match="does not hold 4294967295 pairs"):
        framing.parse_confirm(struct.pack("<II", 1, 0xFFFFFFFF) + bytes(16))
    with pytest.raises(FrameError, match="ACK frame body of 17 bytes does not hold 1 tags"):
        framing.parse_ack(struct.pack("<IIQ", 1, 1, 5) + b"x")
    with pytest.raises(FrameError, match="does not hold 4294967295 tags"):
        framing.parse_ack(struct.pack("<II", 1, 0xFFFFFFFF))
    assert framing.parse_ack(struct.pack("<II", 9, 0)) == (9, [])
    assert framing.parse_confirm(struct.pack("<II", 9, 0)) == (9, [])


def test_credit_must_be_exact() -> None:
    with pytest.raises(FrameError, match="CREDIT frame body of 9 bytes, expected 8"):
        framing.parse_credit(bytes(9))


def test_send_fail_text_must_be_utf8() -> None:
    with pytest.raises(FrameError, match="SEND_FAIL frame text is not valid UTF-8"):
        framing.parse_send_fail(struct.pack("<IQH", 1, 2, 3) + b"\xff\xfe")
    assert framing.parse_send_fail(struct.pack("<IQH", 1, 2, 3)) == (1, 2, 3, "")


def test_parsers_accept_buffers() -> None:
    body = struct.pack("<IQ", 5, 6) + b"blob"
    assert framing.parse_publish(bytearray(body)) == (5, 6, b"blob")
    assert framing.parse_publish(memoryview(b"?" + body)[1:]) == (5, 6, b"blob")


def test_check_eof_mid_frame() -> None:
    dec = FrameDecoder(LIMIT)
    data = ref.publish(1, 2, 0, b"hello")
    dec.feed(data[:-2])
    with pytest.raises(FrameError, match=r"connection closed inside a frame \(23 of 25 bytes\)"):
        dec.check_eof()
    dec = FrameDecoder(LIMIT)
    dec.feed(data[:3])
    with pytest.raises(FrameError, match=r"connection closed inside a frame \(3 of 8 bytes\)"):
        dec.check_eof()


def test_check_eof_clean() -> None:
    dec = FrameDecoder(LIMIT)
    dec.check_eof()
    dec.feed(ref.heartbeat() * 3)
    dec.check_eof()


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        bytes.fromhex("1603010200010001fc0303") + bytes(100),  # TLS ClientHello
        b"\xff" * 64,
        b"\x00\x00\x00\x00\x00\x00\x00\x00",
        b"CONNECT\naccept-version:1.2\n\n\x00",  # STOMP
    ],
)
def test_garbage_raises_frame_error(garbage: bytes) -> None:
    dec = FrameDecoder(LIMIT)
    with pytest.raises(FrameError) as info:
        dec.feed(garbage)
    assert "frame" in str(info.value)
    assert isinstance(info.value, ProtocolError)
    assert isinstance(info.value, ValueError)


def test_decoder_unusable_after_error() -> None:
    dec = FrameDecoder(LIMIT)
    with pytest.raises(FrameError):
        dec.feed(_header(0, 0x7F))
    with pytest.raises(FrameError, match="unusable after an earlier protocol error"):
        dec.feed(ref.heartbeat())
    assert dec.buffered == 0


def test_unpack_control_errors() -> None:
    assert framing.unpack_control(b"\x80") == {}
    with pytest.raises(FrameError, match="control frame body is a list, expected a map"):
        framing.unpack_control(b"\x90")
    with pytest.raises(FrameError, match="control frame body is not valid msgpack"):
        framing.unpack_control(b"\xc1")
    with pytest.raises(FrameError, match="not valid msgpack"):
        framing.unpack_control(b"")
    with pytest.raises(FrameError, match="not valid msgpack"):
        framing.unpack_control(b"\x80\x80")  # trailing data
    with pytest.raises(FrameError, match="not valid msgpack"):
        framing.unpack_control(b"\xdf\xff\xff\xff\xff")  # claims 4G entries
    with pytest.raises(FrameError, match="non-string key"):
        framing.unpack_control(b"\x81\xc4\x01k\x01")  # bytes key
    with pytest.raises(FrameError):
        framing.unpack_control(b"\x91" * 5000)  # nested deeper than msgpack allows


def test_encoder_take_resets() -> None:
    enc = FrameEncoder()
    assert len(enc) == 0
    assert enc.take() == b""
    enc.heartbeat()
    enc.credit(1, 2)
    assert len(enc) == 24
    assert enc.take() == ref.heartbeat() + ref.credit(1, 2)
    assert len(enc) == 0
    enc.publish(1, 1, 0, b"x" * 500_000)  # grows past the kept capacity, then frees it
    assert len(enc.take()) == 8 + 12 + 500_000
    enc.heartbeat()
    assert enc.take() == ref.heartbeat()


def test_encoder_raw_writes_anything() -> None:
    enc = FrameEncoder()
    enc.raw(0x7F, 0xFF, b"body")
    enc.raw(consts.FRAME_REQUEST, 0, bytearray(b"\x80"))
    assert enc.take() == b"\x04\x00\x00\x00\x7f\xff\x00\x00body" + ref.frame(0x10, 0, b"\x80")


def test_encoder_buffer_types() -> None:
    enc = FrameEncoder()
    enc.publish(1, 2, 0, bytearray(b"ab"))
    enc.deliver(1, 1, 3, 4, memoryview(b"cd"))
    assert enc.take() == ref.publish(1, 2, 0, b"ab") + ref.deliver(1, 1, 3, 4, b"cd")


def test_encoder_failure_leaves_no_partial_frame() -> None:
    enc = FrameEncoder()
    enc.heartbeat()
    with pytest.raises((TypeError, ValueError)):
        enc.confirm(1, [(1, 2), (3,)])
    with pytest.raises(OverflowError):
        enc.confirm(1, [(1, 2), (3, -1)])
    with pytest.raises(OverflowError):
        enc.ack(1, [1, 2**64])
    with pytest.raises(TypeError):
        enc.ack(1, [1, "2"])
    with pytest.raises(TypeError):
        enc.control(consts.FRAME_REQUEST, {"x": object()})
    assert enc.take() == ref.heartbeat()


def test_encoder_range_checks() -> None:
    enc = FrameEncoder()
    with pytest.raises(OverflowError):
        enc.publish(-1, 0, 0, b"")
    with pytest.raises(OverflowError):
        enc.publish(2**32, 0, 0, b"")
    with pytest.raises(OverflowError):
        enc.credit(1, 2**32)
    with pytest.raises(OverflowError):
        enc.send_fail(1, 1, 2**16, "x")
    with pytest.raises(OverflowError):
        enc.raw(256, 0, b"")
    assert len(enc) == 0


def test_encoder_accepts_iterables() -> None:
    enc = FrameEncoder()
    enc.ack(2, iter([1, 2]))
    enc.confirm(2, ((s, s * 10) for s in range(3)))
    assert enc.take() == ref.ack(2, [1, 2]) + ref.confirm(2, [(0, 0), (1, 10), (2, 20)])
