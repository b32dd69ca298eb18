"""Message blob codec (emsfast/_core/message.pyx) against docs/protocol.md §5."""

import os
import struct
import sys

import msgpack
import pytest

from emsfast import consts
from emsfast._core.message import (
    decode_message,
    decode_meta,
    encode_message,
    message_body,
    peek_message,
)
from emsfast.errors import FrameError

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import reference_codec as ref  # noqa: E402

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
PROPS = {
    "none": None,
    "t": True,
    "f": False,
    "zero": 0,
    "neg": -5,
    "min": I64_MIN,
    "max": I64_MAX,
    "u64": 2**64 - 1,
    "pi": 3.25,
    "s": "text é",
    "empty": "",
    "b": b"\x00\xff",
}
HEADERS = {"dest": "q:orders.eu", "cid": "c-1", "type": "Order", "reply": "t:$TMP$.x"}


def _head(body_type: int = 1, mode: int = 2, priority: int = 4, meta_len: int = 3) -> bytes:
    return struct.pack("<BBBBIqq", body_type, mode, priority, 0, meta_len, 0, 0)


@pytest.mark.parametrize("body_type", range(5))
@pytest.mark.parametrize("mode", [consts.NON_PERSISTENT, consts.PERSISTENT, consts.RELIABLE])
def test_round_trip_header_fields(body_type: int, mode: int) -> None:
    for priority in (0, 4, 9):
        blob = encode_message(body_type, mode, priority, 1_700_000_000_123, 0, None, None, b"b")
        assert peek_message(blob) == (body_type, mode, priority, 1_700_000_000_123, 0)
        assert decode_message(blob) == (
            body_type,
            mode,
            priority,
            1_700_000_000_123,
            0,
            None,
            None,
            b"b",
        )


@pytest.mark.parametrize(
    ("headers", "properties"),
    [(None, None), ({}, {}), (HEADERS, None), (None, PROPS), (HEADERS, PROPS), ({}, PROPS)],
)
def test_round_trip_meta_and_layout(headers: dict | None, properties: dict | None) -> None:
    body = b"payload \x00\x01"
    blob = encode_message(1, 2, 4, I64_MIN, I64_MAX, headers, properties, body)
    assert blob == ref.encode_message(1, 2, 4, I64_MIN, I64_MAX, headers, properties, body)
    assert decode_meta(blob) == (headers or None, properties or None)
    assert message_body(blob) == body
    assert decode_message(blob) == (
        1,
        2,
        4,
        I64_MIN,
        I64_MAX,
        headers or None,
        properties or None,
        body,
    )
    assert ref.decode_message(blob) == decode_message(blob)


def test_empty_meta_is_nil_nil() -> None:
    blob = encode_message(0, 1, 4, 0, 0, None, {}, b"")
    assert len(blob) == consts.MSG_HEADER_LEN + 3
    assert blob[consts.MSG_HEADER_LEN :] == msgpack.packb([None, None])
    assert struct.unpack_from("<I", blob, 4)[0] == 3


def test_body_buffer_types() -> None:
    for body in (bytearray(b"abc"), memoryview(b"xabc")[1:], b"abc"):
        blob = encode_message(2, 1, 4, 0, 0, None, None, body)
        assert message_body(blob) == b"abc"
    blob = encode_message(2, 1, 4, 0, 0, HEADERS, None, b"abc")
    for kind in (bytearray, memoryview):
        assert peek_message(kind(blob)) == (2, 1, 4, 0, 0)
        assert decode_message(kind(blob))[5:] == (HEADERS, None, b"abc")
        assert decode_meta(kind(blob)) == (HEADERS, None)
        assert message_body(kind(blob)) == b"abc"


def test_large_body() -> None:
    body = os.urandom(1 << 20)
    blob = encode_message(2, 2, 9, 5, 6, {"dest": "q:big"}, None, body)
    assert message_body(blob) == body


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((5, 2, 4), "body_type 5 is not one of 0..4"),
        ((-1, 2, 4), "body_type -1"),
        ((1, 3, 4), "delivery_mode 3 is not 1, 2 or 22"),
        ((1, 0, 4), "delivery_mode 0"),
        ((1, 2, 10), "priority 10 is not in 0..9"),
        ((1, 2, -1), "priority -1"),
    ],
)
def test_encode_rejects_bad_header(args: tuple[int, int, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_message(*args, 0, 0, None, None, b"")


def test_encode_rejects_bad_meta() -> None:
    with pytest.raises(TypeError, match="property 'x' has a list value"):
        encode_message(1, 2, 4, 0, 0, None, {"x": [1]}, b"")
    with pytest.raises(TypeError, match="property 'x' has a dict value"):
        encode_message(1, 2, 4, 0, 0, None, {"x": {}}, b"")
    with pytest.raises(TypeError, match="key 1 is not a str"):
        encode_message(1, 2, 4, 0, 0, None, {1: 1}, b"")
    with pytest.raises(TypeError, match="header must be a dict"):
        encode_message(1, 2, 4, 0, 0, [("dest", "q:a")], None, b"")
    with pytest.raises(OverflowError):
        encode_message(1, 2, 4, 2**63, 0, None, None, b"")
    with pytest.raises(OverflowError):
        encode_message(1, 2, 4, 0, 0, None, {"big": 2**64}, b"")
    with pytest.raises(TypeError):
        encode_message(1, 2, 4, 0, 0, None, None, "text is not bytes")


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"", "message blob of 0 bytes is shorter than its 24-byte header"),
        (_head()[:23], "message blob of 23 bytes is shorter than its 24-byte header"),
        (_head(body_type=5) + b"\x92\xc0\xc0", "body_type 5 is not one of 0..4"),
        (_head(mode=3) + b"\x92\xc0\xc0", "delivery_mode 3 is not 1, 2 or 22"),
        (_head(priority=10) + b"\x92\xc0\xc0", "priority 10 is above 9"),
        (
            _head(meta_len=4) + b"\x92\xc0\xc0",
            "meta block of 4 bytes overruns the 3 bytes after the header",
        ),
        (_head(meta_len=0xFFFFFFFF), "meta block of 4294967295 bytes overruns"),
    ],
)
def test_peek_rejects(blob: bytes, match: str) -> None:
    for fn in (peek_message, decode_meta, decode_message, message_body):
        with pytest.raises(FrameError, match=match):
            fn(blob)


@pytest.mark.parametrize(
    ("meta", "match"),
    [
        (b"", "meta block is empty"),
        (b"\xc1", "not valid msgpack"),
        (b"\x92\xc0", "not valid msgpack"),
        (b"\x92\xc0\xc0\xc0", "not valid msgpack"),
        (b"\x80", "not a 2-element array"),
        (b"\x93\xc0\xc0\xc0", "not a 2-element array"),
        (b"\x92\x01\xc0", "headers is a int, expected a map or nil"),
        (msgpack.packb([None, {"a": [1]}]), "properties 'a' has a list value"),
        (msgpack.packb([{"dest": {"x": 1}}, None]), "headers 'dest' has a dict value"),
        (msgpack.packb([None, {b"k": 1}]), "key b'k' is not a string"),
        (msgpack.packb([None, {"t": msgpack.ExtType(5, b"x")}]), "has a ExtType value"),
        (b"\x92\xc0\xdf\xff\xff\xff\xff", "not valid msgpack"),
    ],
)
def test_decode_meta_rejects(meta: bytes, match: str) -> None:
    blob = _head(meta_len=len(meta)) + meta + b"body"
    peek_message(blob)  # the fixed header is fine; only the meta block is bad
    assert message_body(blob) == b"body"
    for fn in (decode_meta, decode_message):
        with pytest.raises(FrameError, match=match):
            fn(blob)


def test_message_flags_byte_is_ignored() -> None:
    blob = bytearray(encode_message(1, 2, 4, 0, 0, None, None, b"x"))
    blob[3] = 0x80
    assert peek_message(bytes(blob)) == (1, 2, 4, 0, 0)


def _meta(blob: bytes) -> bytes:
    (meta_len,) = struct.unpack_from("<I", blob, 4)
    return blob[consts.MSG_HEADER_LEN : consts.MSG_HEADER_LEN + meta_len]


INT_EDGES = [
    0,
    1,
    31,
    32,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2**32 - 1,
    2**32,
    I64_MAX,
    I64_MAX + 1,
    2**64 - 1,
    -1,
    -31,
    -32,
    -33,
    -127,
    -128,
    -129,
    -32768,
    -32769,
    -(2**31),
    -(2**31) - 1,
    I64_MIN,
]
SIZE_EDGES = [0, 1, 31, 32, 255, 256, 65535, 65536]


def test_meta_packing_matches_msgpack_at_every_edge() -> None:
    props: dict[str, object] = {f"i{i}": v for i, v in enumerate(INT_EDGES)}
    props.update({f"s{n}": "é" * (n // 2) + "x" * (n % 2) for n in SIZE_EDGES})
    props.update({f"b{n}": bytes(n) for n in SIZE_EDGES})
    props.update(
        {
            "inf": float("inf"),
            "ninf": float("-inf"),
            "nzero": -0.0,
            "tiny": 5e-324,
            "nan": float("nan"),
            "t": True,
            "f": False,
            "n": None,
            "k" * 300: 1,
        }
    )
    blob = encode_message(3, 2, 4, 0, 0, None, props, b"")
    assert _meta(blob) == msgpack.packb([None, props])
    decoded = decode_meta(blob)[1]
    assert decoded is not None
    assert list(decoded) == list(props)
    assert decoded["nan"] != decoded["nan"]


@pytest.mark.parametrize("size", [15, 16, 17, 65535, 65536])
def test_map_size_edges(size: int) -> None:
    props = {str(i): i for i in range(size)}
    blob = encode_message(1, 1, 0, 0, 0, {"dest": "q:x"}, props, b"")
    assert _meta(blob) == msgpack.packb([{"dest": "q:x"}, props])
    assert decode_meta(blob) == ({"dest": "q:x"}, props)


def test_meta_accepts_subclasses_like_msgpack() -> None:
    import enum

    class Color(enum.IntEnum):
        RED = 300

    class Name(str):
        pass

    props = {Name("k"): Name("v"), "c": Color.RED}
    blob = encode_message(1, 1, 0, 0, 0, None, props, b"")
    assert _meta(blob) == msgpack.packb([None, props])
    assert decode_meta(blob) == (None, {"k": "v", "c": 300})


def test_unencodable_str_fails_cleanly() -> None:
    with pytest.raises(UnicodeEncodeError):
        encode_message(1, 1, 0, 0, 0, None, {"x": "\ud800"}, b"")
