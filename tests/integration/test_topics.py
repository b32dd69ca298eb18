"""Topics end to end against a real emsfastd (issue 3 item 3).

Subscriptions are shown to exist by ``prime`` (markers published until every
subscriber saw one), never by sleeping; markers are skipped by the receive helpers.
"""

from __future__ import annotations

import pytest

import emsfast
from emsfast import errors
from emsfast._testbase.clientutil import (
    connection,
    dest_name,
    prime,
    receive_n,
    receive_until,
    text_of,
)

pytestmark = pytest.mark.timeout(60)


def T(text, **props):
    return emsfast.TextMessage(text, properties=props or None)


async def test_fan_out_to_three_subscribers(server, uniq):
    topic = emsfast.Topic(uniq("t"))
    async with (
        connection(server.url) as pub_conn,
        connection(server.url) as c1,
        connection(server.url) as c2,
        connection(server.url) as c3,
    ):
        subs = [c.session().consumer(topic) for c in (c1, c2, c3)]
        producer = pub_conn.session().producer(topic)
        await prime(producer, subs)
        for i in range(10):
            await producer.send(T(f"m{i}"), delivery_mode="non_persistent")
        for sub in subs:
            got = await receive_n(sub, 10)
            assert [text_of(m) for m in got] == [f"m{i}" for i in range(10)]


async def test_wildcard_subscribers(server, uniq):
    base = uniq("prices")
    async with connection(server.url) as pub_conn, connection(server.url) as sub_conn:
        star = sub_conn.session().consumer(emsfast.Topic(f"{base}.*"))
        deep = sub_conn.session().consumer(emsfast.Topic(f"{base}.>"))
        session = pub_conn.session()
        await prime(session.producer(emsfast.Topic(f"{base}.prime")), [star, deep])
        for name, text in [
            (f"{base}.a", "A"),
            (f"{base}.a.b", "AB"),
            (base, "ROOT"),  # '>' needs at least one more element
            (uniq("other"), "OTHER"),
            (f"{base}.end", "END"),
        ]:
            await session.producer(emsfast.Topic(name)).send(T(text))
        got_star = await receive_until(star, "END")
        got_deep = await receive_until(deep, "END")
    assert [text_of(m) for m in got_star] == ["A", "END"]
    assert [text_of(m) for m in got_deep] == ["A", "AB", "END"]
    # The destination of a delivered message is the concrete topic it was sent to.
    assert [dest_name(m.destination) for m in got_star] == [f"{base}.a", f"{base}.end"]
    assert [dest_name(m.destination) for m in got_deep] == [
        f"{base}.a",
        f"{base}.a.b",
        f"{base}.end",
    ]
    assert all(isinstance(m.destination, emsfast.Topic) for m in got_deep)


async def test_late_subscriber_misses_earlier_messages(server, uniq):
    topic = emsfast.Topic(uniq("t"))
    async with connection(server.url) as pub_conn, connection(server.url) as sub_conn:
        producer = pub_conn.session().producer(topic)
        early = sub_conn.session().consumer(topic)
        await prime(producer, [early])
        await producer.send(T("before"))
        assert [text_of(m) for m in await receive_until(early, "before")] == ["before"]

        late = sub_conn.session().consumer(topic)
        seen = await prime(producer, [late])
        assert [text_of(m) for m in seen[0]] == []
        await producer.send(T("after"))
        assert [text_of(m) for m in await receive_until(late, "after")] == ["after"]
        assert [text_of(m) for m in await receive_until(early, "after")] == ["after"]


async def test_durable_subscription_keeps_messages_while_offline(server, uniq):
    topic = emsfast.Topic(uniq("news"))
    client_id = uniq("client").replace(".", "_")
    async with connection(server.url) as pub_conn:
        producer = pub_conn.session().producer(topic)

        async with connection(server.url, client_id=client_id) as conn:
            sub = conn.session().consumer(topic, durable="d1")
            await prime(producer, [sub])
            await sub.close()

        for text in ("off1", "off2", "off3"):
            await producer.send(T(text), delivery_mode="persistent")

        async with connection(server.url, client_id=client_id) as conn:
            session = conn.session()
            sub = session.consumer(topic, durable="d1")
            got = await receive_until(sub, "off3")
            assert [text_of(m) for m in got] == ["off1", "off2", "off3"]
            await sub.close()
            await session.unsubscribe("d1")

        # Unsubscribed: what is published now is kept for nobody.
        await producer.send(T("gone"), delivery_mode="persistent")

        async with connection(server.url, client_id=client_id) as conn:
            sub = conn.session().consumer(topic, durable="d1")
            seen = await prime(producer, [sub])
            assert [text_of(m) for m in seen[0]] == []
            await producer.send(T("fresh"))
            assert [text_of(m) for m in await receive_until(sub, "fresh")] == ["fresh"]


async def test_durable_and_client_id_rules(server, uniq):
    topic = emsfast.Topic(uniq("t"))
    client_id = uniq("cid").replace(".", "_")
    async with connection(server.url, client_id=client_id) as conn:
        # A client id belongs to one connection at a time.
        with pytest.raises(errors.InUseError):
            other = await emsfast.connect(server.url, client_id=client_id)
            await other.close()
        session = conn.session()
        sub = session.consumer(topic, durable="d")
        await sub.receive(timeout=0)
        # One active subscriber per durable; no unsubscribe while it is active.
        with pytest.raises(errors.InUseError):
            await conn.session().consumer(topic, durable="d").receive(timeout=1)
        with pytest.raises(errors.InUseError):
            await session.unsubscribe("d")
        with pytest.raises(errors.NotFoundError):
            await session.unsubscribe("never_created")
        await sub.close()
        await session.unsubscribe("d")
    # A durable needs a client id.
    async with connection(server.url) as anonymous:
        with pytest.raises(errors.EmsfastError):
            await anonymous.session().consumer(topic, durable="d").receive(timeout=1)
