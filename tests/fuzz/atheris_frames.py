"""Fuzz the frame decoder: ``FrameDecoder.feed``/``check_eof`` and ``parse_*``.

Input: byte 0 picks the frame limit, byte 1 the chunk size the stream is fed in
(0: one piece), the rest is the byte stream. Checks, besides "only FrameError":
chunked and whole feeding agree, both agree with tests/reference_codec.py, and
every frame and parsed body encodes back to the same bytes.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import instrumented, main, named  # noqa: E402

with instrumented(__name__, "reference_codec"):
    import reference_codec as ref

    from emsfast._core import framing
    from emsfast._core.framing import FrameDecoder, FrameEncoder
    from emsfast.errors import FrameError

LIMITS = (0, 16, 4096, 1 << 20)

PARSERS = {
    ref.PUBLISH: framing.parse_publish,
    ref.DELIVER: framing.parse_deliver,
    ref.CONFIRM: framing.parse_confirm,
    ref.SEND_FAIL: framing.parse_send_fail,
    ref.CREDIT: framing.parse_credit,
    ref.ACK: framing.parse_ack,
}


def _encode_parsed(ftype: int, flags: int, parsed: tuple[Any, ...]) -> bytes:
    enc = FrameEncoder()
    if ftype == ref.PUBLISH:
        enc.publish(parsed[0], parsed[1], flags, parsed[2])
    elif ftype == ref.DELIVER:
        enc.deliver(*parsed)
    elif ftype == ref.CONFIRM:
        enc.confirm(*parsed)
    elif ftype == ref.SEND_FAIL:
        enc.send_fail(*parsed)
    elif ftype == ref.CREDIT:
        enc.credit(*parsed)
    else:
        enc.ack(*parsed)
    return enc.take()


def _feed(dec: FrameDecoder, stream: bytes, step: int) -> list[tuple[int, int, bytes]]:
    frames: list[tuple[int, int, bytes]] = []
    if step == 0:
        return dec.feed(stream)
    for i in range(0, len(stream), step):
        # memoryview as well as bytes: the buffer-protocol path of feed().
        chunk = stream[i : i + step]
        frames += dec.feed(memoryview(chunk) if i % 2 else chunk)
    return frames


def check_body(ftype: int, flags: int, body: bytes) -> None:
    if ftype == ref.HEARTBEAT:
        return
    if ftype not in PARSERS:
        try:
            framing.unpack_control(body)
        except FrameError as exc:
            named(exc)
        return
    try:
        parsed = PARSERS[ftype](body)
    except FrameError as exc:
        named(exc)
        return
    assert parsed == ref.parse(ftype, body), (ftype, parsed)
    assert _encode_parsed(ftype, flags, parsed) == ref.frame(ftype, flags, body)


def test_one_input(data: bytes) -> None:
    if len(data) < 2:
        return
    limit, step, stream = LIMITS[data[0] & 3], data[1], data[2:]

    try:
        want, rest = ref.decode_stream(stream, limit)
    except ValueError:
        want, rest = None, b""

    whole = FrameDecoder(limit)
    try:
        got = whole.feed(stream)
    except FrameError as exc:
        named(exc)
        assert want is None, "decoder refused a stream the reference accepts"
        try:
            whole.feed(b"")
        except FrameError as again:
            assert "unusable" in str(again)
        else:
            raise AssertionError("decoder accepted data after a protocol error")
    else:
        assert want is not None, "decoder accepted a stream the reference refuses"
        assert got == want
        assert whole.buffered == len(rest)

    chunked = FrameDecoder(limit)
    try:
        pieces = _feed(chunked, stream, step)
    except FrameError as exc:
        named(exc)
        assert want is None, "chunked feeding failed where one piece did not"
        return
    assert want is not None, "chunked feeding accepted what one piece refused"
    assert pieces == want
    assert chunked.buffered == len(rest)
    try:
        chunked.check_eof()
    except FrameError as exc:
        named(exc)
        assert rest, "check_eof raised with nothing buffered"
    else:
        assert not rest, "check_eof passed inside a frame"

    enc = FrameEncoder()
    for ftype, flags, body in pieces:
        enc.raw(ftype, flags, body)
        check_body(ftype, flags, body)
    assert enc.take() == stream[: len(stream) - len(rest)]


if __name__ == "__main__":
    main(test_one_input)
