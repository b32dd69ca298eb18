"""Property tests: the Cython codec equals tests/reference_codec.py, and hostile
bytes raise nothing but FrameError."""

import os
import sys

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emsfast import consts
from emsfast._core import framing, message
from emsfast._core.framing import FrameDecoder, FrameEncoder
from emsfast.errors import FrameError

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import reference_codec as ref  # noqa: E402

LIMIT = 1 << 20
BOUNDED = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

u8 = st.integers(0, 2**8 - 1)
u16 = st.integers(0, 2**16 - 1)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
blobs = st.binary(max_size=300)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    i64,
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
)
prop_maps = st.one_of(st.none(), st.dictionaries(st.text(max_size=12), scalars, max_size=6))
json_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)

# Each strategy yields (method name, args, reference frame bytes).
frame_ops = st.one_of(
    st.tuples(
        st.sampled_from(ref.CONTROL_TYPES),
        st.dictionaries(st.text(max_size=8), json_like, max_size=4),
    ).map(lambda a: ("control", a, ref.control(*a))),
    st.tuples(u32, u64, st.sampled_from([0, 1]), blobs).map(
        lambda a: ("publish", a, ref.publish(*a))
    ),
    st.tuples(u32, u32, u64, u64, blobs).map(lambda a: ("deliver", a, ref.deliver(*a))),
    st.tuples(u32, st.lists(st.tuples(u64, u64), max_size=6)).map(
        lambda a: ("confirm", a, ref.confirm(*a))
    ),
    st.tuples(u32, u64, u16, st.text(max_size=40)).map(
        lambda a: ("send_fail", a, ref.send_fail(*a))
    ),
    st.tuples(u32, u32).map(lambda a: ("credit", a, ref.credit(*a))),
    st.tuples(u32, st.lists(u64, max_size=8)).map(lambda a: ("ack", a, ref.ack(*a))),
    st.just(("heartbeat", (), ref.heartbeat())),
)

PARSERS = {
    ref.PUBLISH: framing.parse_publish,
    ref.DELIVER: framing.parse_deliver,
    ref.CONFIRM: framing.parse_confirm,
    ref.SEND_FAIL: framing.parse_send_fail,
    ref.CREDIT: framing.parse_credit,
    ref.ACK: framing.parse_ack,
}


def _parse(ftype: int, body: bytes) -> object:
    if ftype in PARSERS:
        return PARSERS[ftype](body)
    if ftype == ref.HEARTBEAT:
        return None
    return framing.unpack_control(body)


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@BOUNDED
@given(
    ops=st.lists(frame_ops, min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 4000), max_size=10),
)
def test_frames_round_trip_and_equal_reference(ops: list, cuts: list[int]) -> None:
    enc = FrameEncoder()
    for name, args, _ in ops:
        getattr(enc, name)(*args)
    data = enc.take()
    assert data == b"".join(expected for _, _, expected in ops)

    want, rest = ref.decode_stream(data, LIMIT)
    assert rest == b""
    dec = FrameDecoder(LIMIT)
    got = []
    for chunk in _chunks(data, cuts):
        got += dec.feed(chunk)
    assert got == want
    dec.check_eof()
    for ftype, _flags, body in got:
        assert _parse(ftype, body) == ref.parse(ftype, body)


@BOUNDED
@given(
    data=st.binary(max_size=600),
    cuts=st.lists(st.integers(0, 600), max_size=6),
    limit=st.sampled_from([0, 16, 4096, LIMIT]),
)
def test_random_bytes_raise_only_frame_error(data: bytes, cuts: list[int], limit: int) -> None:
    dec = FrameDecoder(limit)
    try:
        frames = []
        for chunk in _chunks(data, cuts):
            frames += dec.feed(chunk)
        dec.check_eof()
    except FrameError:
        return
    # Whatever the decoder accepted, the reference accepts the same way.
    want, rest = ref.decode_stream(data, limit)
    assert frames == want and rest == b""
    for ftype, _flags, body in frames:
        try:
            _parse(ftype, body)
        except FrameError:
            pass


@BOUNDED
@given(valid=st.lists(frame_ops, max_size=3), noise=st.binary(min_size=1, max_size=64))
def test_valid_frames_then_garbage(valid: list, noise: bytes) -> None:
    prefix = b"".join(expected for _, _, expected in valid)
    dec = FrameDecoder(LIMIT)
    assert len(dec.feed(prefix)) == len(valid)
    try:
        dec.feed(noise)
        dec.check_eof()
    except FrameError:
        pass


@BOUNDED
@given(body=st.binary(max_size=200))
def test_random_bodies_into_parsers(body: bytes) -> None:
    for ftype in (*PARSERS, *ref.CONTROL_TYPES):
        try:
            got = _parse(ftype, body)
        except FrameError:
            continue
        if ftype in PARSERS:
            assert got == ref.parse(ftype, body)


@BOUNDED
@given(
    body_type=st.integers(0, 4),
    mode=st.sampled_from([1, 2, 22]),
    priority=st.integers(0, 9),
    ts=i64,
    exp=i64,
    headers=prop_maps,
    properties=prop_maps,
    body=blobs,
)
def test_message_round_trip_equals_reference(
    body_type: int,
    mode: int,
    priority: int,
    ts: int,
    exp: int,
    headers: dict | None,
    properties: dict | None,
    body: bytes,
) -> None:
    blob = message.encode_message(body_type, mode, priority, ts, exp, headers, properties, body)
    assert blob == ref.encode_message(body_type, mode, priority, ts, exp, headers, properties, body)
    assert message.peek_message(blob) == (body_type, mode, priority, ts, exp)
    decoded = message.decode_message(blob)
    assert decoded == ref.decode_message(blob)
    assert decoded == (
        body_type,
        mode,
        priority,
        ts,
        exp,
        headers or None,
        properties or None,
        body,
    )
    assert message.decode_meta(blob) == (headers or None, properties or None)
    assert message.message_body(blob) == body


@BOUNDED
@given(
    blob=st.one_of(
        st.binary(max_size=120),
        # Mostly-valid headers so the fuzzer reaches the meta block.
        st.tuples(
            st.integers(0, 5),
            st.sampled_from([1, 2, 3, 22]),
            st.integers(0, 10),
            st.integers(0, 80),
            st.binary(max_size=80),
        ).map(
            lambda a: bytes([a[0], a[1], a[2], 0]) + a[3].to_bytes(4, "little") + bytes(16) + a[4]
        ),
        st.tuples(json_like, blobs).map(
            lambda a: (
                bytes([1, 2, 4, 0])
                + len(m := msgpack.packb(a[0])).to_bytes(4, "little")
                + bytes(16)
                + m
                + a[1]
            )
        ),
    )
)
def test_random_blobs_raise_only_frame_error(blob: bytes) -> None:
    for fn in (
        message.peek_message,
        message.decode_meta,
        message.decode_message,
        message.message_body,
    ):
        try:
            fn(blob)
        except FrameError:
            pass
    assert consts.MSG_HEADER_LEN == 24
