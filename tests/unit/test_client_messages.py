"""Client message classes through the native blob codec, and -property typing."""

import pytest

from emsfast.client.messages import (
    BytesMessage,
    MapMessage,
    Message,
    Queue,
    StreamMessage,
    TextMessage,
    Topic,
    decode,
    parse_property,
    typed_value,
)
from emsfast.client.render import json_line, json_object, plain_line
from emsfast.consts import NON_PERSISTENT, PERSISTENT, RELIABLE
from emsfast.errors import InvalidError

PROPS = {"n": 6, "neg": -1, "big": 2**63 - 1, "f": 1.5, "ok": True, "s": "é", "b": b"\x00",
         "nil": None}


ORDERS = Queue("orders")


def round_trip(msg, mode=PERSISTENT, priority=4, ts=1_700_000_000_000, exp=0, dest=ORDERS):
    return decode(msg.encode(mode, priority, ts, exp, dest), "ID:S.7", 1)


@pytest.mark.parametrize(
    "msg",
    [
        TextMessage("hi ☃", properties=PROPS),
        TextMessage(""),
        BytesMessage(b"\x00\xff" * 100),
        MapMessage({"a": 1, "b": [1, "x"], "c": {"d": b"\x01"}, "e": None}),
        StreamMessage([1, "x", b"y", 2.5, None, True]),
        Message({"only": "props"}),
    ],
)
def test_round_trip_body_and_properties(msg):
    got = round_trip(msg)
    assert type(got) is type(msg)
    assert got.body == msg.body
    assert got.properties == msg.properties
    assert got.message_id == "ID:S.7"


def test_round_trip_headers():
    msg = TextMessage("x", correlation_id="c-1", jms_type="Order", reply_to=Topic("replies"))
    got = round_trip(msg, mode=NON_PERSISTENT, priority=9, ts=123, exp=456, dest=Topic("a.b"))
    assert got.destination == Topic("a.b")
    assert got.reply_to == Topic("replies")
    assert got.correlation_id == "c-1"
    assert got.jms_type == "Order"
    assert got.delivery_mode == "non_persistent"
    assert got.priority == 9
    assert (got.timestamp, got.expiration) == (123, 456)
    assert got.redelivered is False
    assert round_trip(msg, mode=RELIABLE).delivery_mode == "reliable"
    assert round_trip(msg).delivery_mode == "persistent"


def test_redelivered_follows_delivery_count():
    blob = TextMessage("x").encode(PERSISTENT, 4, 0, 0, Queue("q"))
    assert decode(blob, None, 1).redelivered is False
    again = decode(blob, None, 3)
    assert again.redelivered is True
    assert again.delivery_count == 3


def test_queue_and_topic_differ():
    assert Queue("a") != Topic("a")
    assert Queue("a").wire == "q:a"
    assert Topic("a.>").wire == "t:a.>"
    with pytest.raises(InvalidError):
        Queue("")


@pytest.mark.parametrize(
    "props",
    [{"x": object()}, {"x": [1]}, {"x": 2**63}, {"x": -(2**63) - 1}, {1: "x"}, {"": 1}],
)
def test_bad_properties_rejected_at_send(props):
    with pytest.raises(InvalidError):
        TextMessage("x", properties=props).encode(PERSISTENT, 4, 0, 0, Queue("q"))


def test_bad_bodies_rejected():
    with pytest.raises(InvalidError):
        TextMessage(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(InvalidError):
        BytesMessage("text")  # type: ignore[arg-type]
    with pytest.raises(InvalidError):
        MapMessage({1: "x"}).encode(PERSISTENT, 4, 0, 0, Queue("q"))  # type: ignore[dict-item]
    with pytest.raises(InvalidError):
        StreamMessage([object()]).encode(PERSISTENT, 4, 0, 0, Queue("q"))


def test_acknowledge_on_unreceived_message_is_a_noop_and_awaitable():
    msg = TextMessage("x")
    assert list(msg.acknowledge().__await__()) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("6", 6),
        ("-3", -3),
        ("+4", 4),
        ("007", 7),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("true", True),
        ("false", False),
        ("True", "True"),
        ("abc", "abc"),
        ("", ""),
        ("nan", "nan"),
        ("inf", "inf"),
        ("0x10", "0x10"),
        ("1_000", "1_000"),
        ("9" * 30, "9" * 30),
        (" 6", " 6"),
    ],
)
def test_typed_value(text, value):
    got = typed_value(text)
    assert got == value
    assert type(got) is type(value)


def test_parse_property():
    assert parse_property("n=6") == ("n", 6)
    assert parse_property("s=a=b") == ("s", "a=b")
    assert parse_property("e=") == ("e", "")
    for bad in ("novalue", "=1", " =1"):
        with pytest.raises(InvalidError):
            parse_property(bad)


def test_render_plain():
    assert plain_line(round_trip(TextMessage("hi"))) == "hi"
    assert plain_line(round_trip(BytesMessage(b"abc"))) == "<3 bytes>"
    assert plain_line(round_trip(MapMessage({"a": 1}))) == '{"a": 1}'
    assert plain_line(round_trip(StreamMessage([1, b"\x00"]))) == '[1, "AA=="]'
    assert plain_line(round_trip(Message())) == ""


def test_render_json():
    obj = json_object(round_trip(TextMessage("hi", properties={"n": 6}), priority=7))
    assert obj == {
        "id": "ID:S.7",
        "destination": "orders",
        "body": "hi",
        "properties": {"n": 6},
        "redelivered": False,
        "delivery_count": 1,
        "priority": 7,
    }
    obj = json_object(round_trip(BytesMessage(b"\x00\x01")))
    assert (obj["body"], obj["body_encoding"]) == ("AAE=", "base64")
    assert '"b": "AA=="' in json_line(round_trip(TextMessage("x", properties={"b": b"\x00"})))
