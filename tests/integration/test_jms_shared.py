"""JMS 2.0 shared subscriptions and noLocal through a real daemon (EMS.md 5.12)."""

from __future__ import annotations

import pytest

import emsfast
from emsfast._testbase.clientutil import (
    connection,
    prime,
    receive_n,
    receive_shared,
    receive_until,
    text_of,
)
from emsfast.errors import InUseError

pytestmark = pytest.mark.timeout(60)


def T(text: str, **props: object) -> emsfast.TextMessage:
    return emsfast.TextMessage(text, properties=props)


@pytest.mark.parametrize("durable", [False, True], ids=["nondurable", "durable"])
async def test_shared_consumers_split_the_messages(server, uniq, durable):
    topic = emsfast.Topic(uniq("t"))
    name = uniq("sub")
    async with connection(server.url) as a, connection(server.url) as b, \
            connection(server.url) as pub:
        make = "shared_durable_consumer" if durable else "shared_consumer"
        consumers = [getattr(a.session(), make)(topic, name),
                     getattr(b.session(), make)(topic, name)]
        producer = pub.session().producer(topic)
        await prime(producer, consumers)
        for i in range(20):
            await producer.send_async(T(f"m{i}"), delivery_mode="non_persistent")
        await producer.flush()
        got = await receive_shared(consumers, 20, timeout=10)
        texts = sorted(text_of(m) for batch in got for m in batch
                       if not m.properties.get("_emsfast_test_prime"))
        assert texts == sorted(f"m{i}" for i in range(20))      # each once
        assert all(batch for batch in got)                      # both took a share
        if durable:
            for c in consumers:
                await c.close()
            await a.session().unsubscribe(name)


async def test_shared_durable_keeps_messages_while_nobody_is_attached(server, uniq):
    topic = emsfast.Topic(uniq("t"))
    name = uniq("sub")
    async with connection(server.url) as conn:
        session = conn.session()
        consumer = session.shared_durable_consumer(topic, name, "keep = TRUE")
        producer = session.producer(topic)
        await consumer.ready
        await consumer.close()
        await producer.send(T("dropped", keep=False))
        await producer.send(T("kept", keep=True))
        again = session.shared_durable_consumer(topic, name, "keep = TRUE")
        (msg,) = await receive_n(again, 1, timeout=10)
        assert text_of(msg) == "kept"
        await again.close()
        await session.unsubscribe(name)


async def test_shared_subscription_in_use_rules(server, uniq):
    topic = emsfast.Topic(uniq("t"))
    name = uniq("sub")
    async with connection(server.url) as conn:
        session = conn.session()
        first = session.shared_durable_consumer(topic, name)
        await first.ready
        # A different selector or an unshared durable of the same name: in use.
        with pytest.raises(InUseError):
            await session.shared_durable_consumer(topic, name, "x = 1").ready
        with pytest.raises(InUseError):
            await _in_use_non_durable(session, topic, name)
        await first.close()
        await session.unsubscribe(name)


async def _in_use_non_durable(session, topic, name):
    first = session.shared_consumer(topic, name + "nd")
    await first.ready
    try:
        await session.shared_consumer(emsfast.Topic(topic.name + ".x"), name + "nd").ready
    finally:
        await first.close()


async def test_shared_nondurable_goes_with_its_last_consumer(server, uniq):
    topic = emsfast.Topic(uniq("t"))
    name = uniq("sub")
    async with connection(server.url) as conn:
        session = conn.session()
        producer = session.producer(topic)
        one = session.shared_consumer(topic, name)
        await prime(producer, [one])
        await one.close()
        await producer.send(T("while nobody listens"))
        two = session.shared_consumer(topic, name)
        await prime(producer, [two])
        await producer.send(T("marker"))
        got = await receive_until(two, "marker", timeout=10)
        assert [text_of(m) for m in got] == ["marker"]


async def test_closing_one_shared_consumer_hands_its_messages_to_the_other(server, uniq):
    topic = emsfast.Topic(uniq("t"))
    name = uniq("sub")
    async with connection(server.url) as a, connection(server.url) as b:
        c1 = a.session(ack_mode="client").shared_consumer(topic, name)
        c2 = b.session().shared_consumer(topic, name)
        producer = b.session().producer(topic)
        await prime(producer, [c1, c2])
        for i in range(10):
            await producer.send_async(T(f"m{i}"), delivery_mode="non_persistent")
        await producer.flush()
        await a.close()         # c1's unacknowledged deliveries go to c2
        got = await receive_n(c2, 10, timeout=10)
        assert sorted(text_of(m) for m in got) == sorted(f"m{i}" for i in range(10))


async def test_nolocal_end_to_end(server, uniq):
    topic = emsfast.Topic(uniq("t"))
    async with connection(server.url) as mine, connection(server.url) as other:
        session = mine.session()
        local = session.consumer(topic, nolocal=True)
        plain = session.consumer(topic)
        own_producer = session.producer(topic)
        other_producer = other.session().producer(topic)
        await prime(other_producer, [local, plain])
        await own_producer.send(T("own"))
        await other_producer.send(T("foreign"))
        assert [text_of(m) for m in await receive_until(local, "foreign")] == ["foreign"]
        assert [text_of(m) for m in await receive_until(plain, "foreign")] == ["own", "foreign"]
