"""One test per crash the atheris harnesses found, named after what broke, plus
a replay of the committed seed corpus through each harness's checks (which
needs no atheris, so it runs everywhere).

To add a crash: minimise it (tests/fuzz/README.md), fix the code, then add a
test here that calls the broken function directly and replays the input.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import atheris_config  # noqa: E402
import atheris_frames  # noqa: E402
import atheris_messages  # noqa: E402
import atheris_selector  # noqa: E402

from emsfast.bodies import check_body  # noqa: E402
from emsfast.client import messages  # noqa: E402
from emsfast.config.destinations import load_destinations  # noqa: E402
from emsfast.config.syntax import parse_int, parse_seconds, parse_size  # noqa: E402
from emsfast.config.tibemsd import load_tibemsd  # noqa: E402
from emsfast.consts import BODY_MAP, BODY_STREAM  # noqa: E402
from emsfast.errors import ConfigError, FrameError, InvalidError  # noqa: E402

HARNESSES = {
    "frames": atheris_frames.test_one_input,
    "messages": atheris_messages.test_one_input,
    "selector": atheris_selector.test_one_input,
    "config": atheris_config.test_one_input,
}


@pytest.mark.parametrize(
    "seed", sorted((HERE / "corpus").glob("*/*")), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_seed_corpus_passes_its_harness(seed: Path) -> None:
    HARNESSES[seed.parent.name](seed.read_bytes())


# -- messages: a TextMessage whose body is not UTF-8 ---------------------------------

# The server passes blobs through unread, so any producer can make every consumer's
# receive() raise UnicodeDecodeError. atheris_messages, first minutes.
BAD_UTF8_TEXT = base64.b64decode(
    "AQIEACMAAADoAwAAAAAAAAAAAAAAAAAAkoOkZGVzdKVxOnEuYaNjaWSiYzCkdHlwZaF0gqFuBaFzoXho"
    "aYyMjIyMjIyMjA==")


def test_client_decode_of_text_body_with_bad_utf8_raises_frame_error() -> None:
    with pytest.raises(FrameError, match="TextMessage body is not valid UTF-8"):
        messages.decode(BAD_UTF8_TEXT)
    atheris_messages.test_one_input(BAD_UTF8_TEXT)


# -- messages: a MapMessage key the server accepted but no client can read ------------

# check_body unpacked with strict_map_key=False, the client with True: the server
# stored a map with an int key and every consumer failed on it. atheris_messages.
MAP_WITH_INT_KEY = base64.b64decode(
    "AwIEAA4AAADoAwAAAAAAAAAAAAAAAAAAkoGkZGVzdKVxOnEuYcCCYaEBoWKSAYGhY6Fk")


@pytest.mark.parametrize("body_type, value", [
    (BODY_MAP, {1: "x"}),
    (BODY_MAP, {"a": {None: 1}}),
    (BODY_STREAM, [1, {2: 3}]),
])
def test_server_refuses_map_keys_clients_cannot_read(body_type: int, value: object) -> None:
    body = msgpack.packb(value)
    with pytest.raises(FrameError):
        cls = messages.MapMessage if body_type == BODY_MAP else messages.StreamMessage
        cls()._set_body(body)
    with pytest.raises(InvalidError, match="not valid msgpack"):
        check_body(body_type, body)


def test_map_message_with_int_key_fails_at_the_server_not_the_consumer() -> None:
    atheris_messages.test_one_input(MAP_WITH_INT_KEY)


# -- config: numbers that do not fit where the server keeps them ---------------------

def test_huge_timeout_in_tibemsd_conf_is_a_config_error_not_overflow(tmp_path: Path) -> None:
    # 1e400 ms / 1000 raised OverflowError out of load_tibemsd (found reading the
    # harness's targets; atheris_config reproduces it).
    conf = tmp_path / "tibemsd.conf"
    conf.write_text("ft_heartbeat = 1" + "0" * 400 + "\n")
    with pytest.raises(ConfigError, match=r"tibemsd.conf:1: ft_heartbeat: .* too large"):
        load_tibemsd(conf)
    atheris_config.test_one_input(b"\x00" + conf.read_bytes())
    with pytest.raises(ValueError, match="expected seconds"):
        parse_seconds("three")


@pytest.mark.parametrize("parse, text", [
    (parse_int, "9223372036854775808"),
    (parse_int, "1" * 5000),        # over Python's 4300-digit int() limit
    (parse_size, "9000000000GB"),
])
def test_config_numbers_beyond_int64_are_refused(parse: Callable[[str], int], text: str) -> None:
    with pytest.raises(ValueError, match="too large; at most 9223372036854775807"):
        parse(text)


def test_queue_expiration_that_overflows_message_expiration_is_refused(tmp_path: Path) -> None:
    # The server stamps now + expiration into the message's int64: this loaded,
    # then every publish to the queue raised OverflowError.
    conf = tmp_path / "queues.conf"
    conf.write_text("q.a  expiration=9223372036854775sec\n")
    with pytest.raises(ConfigError, match=r"queues.conf:1: expiration: expected at most"):
        load_destinations(conf, "queue", True)
    atheris_config.test_one_input(b"\x01" + conf.read_bytes())
    conf.write_text("q.a  expiration=10sec\n")
    table = load_destinations(conf, "queue", True)
    props = table.resolve("q.a")
    assert props is not None and props.expiration_ms == 10_000
