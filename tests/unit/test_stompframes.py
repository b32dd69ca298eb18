"""The STOMP 1.2 frame parser: split at every byte, escapes, limits."""

from __future__ import annotations

import pytest

from emsfast.server.stompframes import Frame, StompParser, encode_frame, escape

STREAM = (
    b"CONNECT\naccept-version:1.2\nhost:h\nlogin:a:b\n\n\0"
    b"\n\r\n"                                                   # heart-beats
    b"SEND\r\ndestination:/queue/a\\cb\r\ncontent-length:5\r\n\r\nx\0y\nz\0"
    b"SEND\ndestination:/queue/c\nk:v1\nk:v2\n\nbody\0"
)
EXPECTED = [
    Frame("CONNECT", {"accept-version": "1.2", "host": "h", "login": "a:b"}),
    Frame("SEND", {"destination": "/queue/a:b", "content-length": "5"}, b"x\0y\nz"),
    Frame("SEND", {"destination": "/queue/c", "k": "v1"}, b"body"),
]


def test_whole_stream() -> None:
    p = StompParser(1024)
    assert p.feed(STREAM) == EXPECTED
    assert p.heartbeats == 2 and p.error is None


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_at_every_offset(cut: int) -> None:
    p = StompParser(1024)
    assert p.feed(STREAM[:cut]) + p.feed(STREAM[cut:]) == EXPECTED


def test_byte_at_a_time() -> None:
    p = StompParser(1024)
    frames = [f for i in range(len(STREAM)) for f in p.feed(STREAM[i:i + 1])]
    assert frames == EXPECTED


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"HELLO\n\n\0", "unknown command"),
        (b"SEND\nno-colon\n\n\0", "without ':'"),
        (b"SEND\nk:bad\\x\n\n\0", "undefined escape"),
        (b"SEND\ncontent-length:abc\n\n\0", "bad content-length"),
        (b"SEND\ncontent-length:2000\n\n", "exceeds max_msg_size"),
        (b"SEND\ncontent-length:1\n\nab\0", "not followed by NUL"),
        (b"SEND\n" + b"k:v\n" * 300 + b"\n\0", "more than 256 headers"),
        (b"SEND\nk:" + b"v" * 70000, "frame head exceeds"),
        (b"SEND\n\n" + b"x" * 1100, "body exceeds"),
    ],
)
def test_malformed_sets_error_after_good_frames(data: bytes, text: str) -> None:
    p = StompParser(1024)
    good = b"SEND\ndestination:/queue/a\n\nok\0"
    assert p.feed(good + data) == [Frame("SEND", {"destination": "/queue/a"}, b"ok")]
    assert p.error is not None and text in str(p.error)
    assert p.feed(b"SEND\n\n\0") == []


def test_encode_escapes_and_counts_body() -> None:
    data = encode_frame("MESSAGE", {"destination": "/queue/a:b", "n": "line\nbreak"}, b"hi")
    assert data == (b"MESSAGE\ndestination:/queue/a\\cb\nn:line\\nbreak\ncontent-length:2\n\n"
                    b"hi\0")
    assert encode_frame("CONNECTED", {"version": "1.2"}) == b"CONNECTED\nversion:1.2\n\n\0"
    assert escape("a\\b\rc") == "a\\\\b\\rc"
