"""Message types, nesting limit, JMS headers and JMSX properties through a real daemon."""

from __future__ import annotations

import msgpack
import pytest

import emsfast
from emsfast._testbase.clientutil import connection, receive_n, text_of
from emsfast.consts import MAX_NESTING_DEPTH
from emsfast.errors import InvalidError

pytestmark = pytest.mark.timeout(60)


def nested(depth: int) -> dict[str, object]:
    """A map body whose maps/lists nest ``depth`` levels (the body is level 1)."""
    inner: object = {"leaf": 1}
    for level in range(1, depth - 1):
        inner = [inner] if level % 2 else {"k": inner}
    return {"top": inner} if depth > 1 else {"leaf": 1}


class UncheckedMap(emsfast.MapMessage):
    """A map encoded without the client's checks, as a foreign client might send it."""

    def _encode_body(self) -> bytes:
        return msgpack.packb(self.map)


async def test_nested_map_and_stream_round_trip_at_the_limit(server, uniq):
    q = emsfast.Queue(uniq("q"))
    body = nested(MAX_NESTING_DEPTH)
    items = [1, "two", [3, {"four": [4.0, None, b"\x00"]}], {"five": True}]
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        await producer.send(emsfast.MapMessage(body))
        await producer.send(emsfast.StreamMessage(items))
        got = await receive_n(conn.session().consumer(q), 2, timeout=10)
        assert isinstance(got[0], emsfast.MapMessage) and got[0].map == body
        assert isinstance(got[1], emsfast.StreamMessage) and got[1].items == items


async def test_too_deep_is_refused_by_client_and_server(server, uniq):
    q = emsfast.Queue(uniq("q"))
    too_deep = nested(MAX_NESTING_DEPTH + 1)
    async with connection(server.url) as conn, connection(server.url) as bystander:
        producer = conn.session().producer(q)
        with pytest.raises(InvalidError, match="deeper than the limit of 32"):
            await producer.send(emsfast.MapMessage(too_deep))
        with pytest.raises(InvalidError, match="deeper than the limit of 32"):
            await producer.send(emsfast.StreamMessage([too_deep]))
        # A client without the check: the server refuses it, to that producer only.
        with pytest.raises(InvalidError, match="deeper than the limit of 32"):
            await producer.send(UncheckedMap(too_deep))
        server.wait_for_line("message refused: MapMessage body nests maps/lists deeper "
                             "than the limit of 32 levels", 10)
        await producer.send(emsfast.TextMessage("after"))
        other = bystander.session().producer(q)
        await other.send(emsfast.TextMessage("bystander"))
        got = await receive_n(conn.session().consumer(q), 2, timeout=10)
        assert [text_of(m) for m in got] == ["after", "bystander"]


@pytest.mark.parametrize("value", [{"a": 1}, [1, 2], object(), 2**64, (1,)],
                         ids=["dict", "list", "object", "int65", "tuple"])
async def test_unsupported_property_type_is_a_clear_error(server, uniq, value):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        with pytest.raises(InvalidError, match="'bad'"):
            await producer.send(emsfast.TextMessage("x", properties={"bad": value}))
        await producer.send(emsfast.TextMessage("fine", properties={"ok": 1}))
        (msg,) = await receive_n(conn.session().consumer(q), 1, timeout=10)
        assert text_of(msg) == "fine"


async def test_headers_and_jmsx_properties(server, uniq):
    q, reply = emsfast.Queue(uniq("q")), emsfast.Topic(uniq("reply"))
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        sent = emsfast.BytesMessage(b"\x01\x02", properties={
            "JMSXGroupID": "g1", "JMSXGroupSeq": 7, "custom": 1.5},
            correlation_id="c-1", reply_to=reply, jms_type="order")
        await producer.send(sent, priority=7, ttl=60_000)
        session = conn.session(ack_mode="client")
        consumer = session.consumer(q)
        (msg,) = await receive_n(consumer, 1, timeout=10)
        h = msg.headers
        assert h["JMSDestination"] == q and h["JMSReplyTo"] == reply
        assert h["JMSMessageID"] == sent.message_id and h["JMSMessageID"].startswith("ID:")
        assert h["JMSCorrelationID"] == "c-1" and h["JMSType"] == "order"
        assert h["JMSPriority"] == 7 and h["JMSDeliveryMode"] == "persistent"
        assert h["JMSTimestamp"] == sent.timestamp > 0
        assert h["JMSExpiration"] == sent.timestamp + 60_000
        assert h["JMSRedelivered"] is False
        assert msg.get("JMSXDeliveryCount") == 1
        assert msg.get("JMSXGroupID") == "g1" and msg.get("JMSXGroupSeq") == 7
        assert msg.get("custom") == 1.5 and msg.get("JMSPriority") == 7
        assert msg.get("absent", "dflt") == "dflt"
        await session.recover()
        (again,) = await receive_n(consumer, 1, timeout=10)
        assert again.get("JMSXDeliveryCount") == 2 and again.headers["JMSRedelivered"] is True
        assert again.properties["JMSXGroupID"] == "g1"
        await again.acknowledge()


async def test_every_message_type(server, uniq):
    q = emsfast.Queue(uniq("q"))
    sent = [emsfast.Message({"p": 1}), emsfast.TextMessage("t"), emsfast.BytesMessage(b"b"),
            emsfast.MapMessage({"k": [1, {"x": b"y"}]}), emsfast.StreamMessage([1, "s"])]
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        for m in sent:
            await producer.send(m)
        got = await receive_n(conn.session().consumer(q), len(sent), timeout=10)
        assert [type(m) for m in got] == [type(m) for m in sent]
        assert [m.body for m in got] == [m.body for m in sent]
