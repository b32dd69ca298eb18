"""Fuzz the message blob codec and everything that reads a received blob.

Input: one message blob (docs/protocol.md §5). It goes through the core's
``peek_message``/``decode_meta``/``decode_message``/``message_body``, the
server's ``parse_publish_message`` and selector field getter, the server's
Map/Stream body check and the client's ``decode``. Besides "only the documented
errors": the core agrees with tests/reference_codec.py, a decoded message
encodes and decodes back to itself, and a Map/Stream body the server accepts is
one every client can read.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import instrumented, main, named  # noqa: E402

with instrumented(__name__, "reference_codec"):
    import msgpack
    import reference_codec as ref

    from emsfast._core import message
    from emsfast._core.dispatch import parse_publish_message
    from emsfast.bodies import check_body
    from emsfast.client import messages
    from emsfast.consts import BODY_MAP, BODY_STREAM
    from emsfast.errors import FrameError, InvalidError

JMS_NAMES = ("JMSPriority", "JMSDeliveryMode", "JMSTimestamp", "JMSExpiration",
             "JMSMessageID", "JMSCorrelationID", "JMSType", "JMSRedelivered",
             "JMSXDeliveryCount")


def _same(a: object, b: object) -> bool:
    """Equality that treats NaN as equal to itself (packed bytes compare)."""
    return msgpack.packb(a, use_bin_type=True) == msgpack.packb(b, use_bin_type=True)


def check_round_trip(blob: bytes, decoded: tuple[Any, ...]) -> None:
    body_type, mode, priority, ts, exp, headers, props, body = decoded
    assert message.peek_message(blob) == decoded[:5]
    assert message.message_body(blob) == body
    assert _same(message.decode_meta(blob), (headers, props))
    assert _same(decoded, ref.decode_message(blob))
    again = message.encode_message(body_type, mode, priority, ts, exp, headers, props, body)
    redecoded = message.decode_message(again)
    # An empty map is sent as nil (protocol.md §5), so {} comes back as None.
    want = (*decoded[:5], headers or None, props or None, body)
    assert _same(redecoded, want), (want, redecoded)
    assert message.encode_message(*redecoded) == again
    if props:
        # Properties go to the application: a decode must never hand out a
        # dict another decode (or the meta cache) shares.
        props.clear()
        assert _same(message.decode_message(blob)[6], redecoded[6])


def check_server(blob: bytes, peeked: tuple[Any, ...] | None) -> None:
    try:
        pid, seq, msg = parse_publish_message(b"\x00" * 12 + blob, 7, 1)
    except FrameError as exc:
        named(exc)
        assert peeked is None, "PUBLISH refused a blob peek_message accepts"
        return
    assert peeked is not None, "PUBLISH accepted a blob peek_message refuses"
    assert (pid, seq, msg.blob, msg.size) == (0, 0, blob, len(blob))
    assert (msg.delivery_mode, msg.priority, msg.timestamp, msg.expiration) == (
        peeked[1], peeked[2], peeked[3], peeked[4])
    try:
        get = msg.field_getter("EMS-SERVER", 1)
    except FrameError as exc:
        named(exc)
        return
    props = message.decode_meta(blob)[1] or {}
    for name in (*JMS_NAMES, *props):
        get(name)


def check_map_stream(body_type: int, body: bytes) -> None:
    try:
        check_body(body_type, body)
    except InvalidError as exc:
        named(exc)
        return
    # The server let it through, so a consumer must be able to read it.
    cls = messages.MapMessage if body_type == BODY_MAP else messages.StreamMessage
    cls()._set_body(body)


def check_client(blob: bytes) -> None:
    try:
        msg = messages.decode(blob, "ID:EMS-SERVER.7", 1)
    except (FrameError, InvalidError) as exc:
        named(exc)
        return
    assert msg.body is not None or type(msg) is messages.Message


def test_one_input(data: bytes) -> None:
    blob = bytes(data)
    try:
        peeked = message.peek_message(blob)
    except FrameError as exc:
        named(exc)
        peeked = None
    check_server(blob, peeked)
    try:
        decoded = message.decode_message(blob)
    except FrameError as exc:
        named(exc)
        try:
            message.decode_meta(blob)
        except FrameError:
            pass
        else:
            raise AssertionError("decode_meta accepted a blob decode_message refuses")
        return
    check_round_trip(blob, decoded)
    if decoded[0] in (BODY_MAP, BODY_STREAM):
        check_map_stream(decoded[0], decoded[7])
    check_client(blob)


if __name__ == "__main__":
    main(test_one_input)
