"""Session-level ack rules that span consumer lifetimes: close keeps what the
application took (CLIENT/EXPLICIT), recover never hands out a message twice.
"""

from __future__ import annotations

import pytest

import emsfast
from emsfast._testbase.clientutil import connection, receive_n, text_of

pytestmark = pytest.mark.timeout(60)


def T(text: str) -> emsfast.TextMessage:
    return emsfast.TextMessage(text)


@pytest.mark.parametrize("mode", ["client", "explicit"])
async def test_closing_a_consumer_keeps_taken_messages_with_the_session(server, uniq, mode):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        for i in range(3):
            await producer.send(T(f"m{i}"))
        session = conn.session(ack_mode=mode)
        first = session.consumer(q)
        taken = await first.receive(timeout=10)
        assert taken is not None and text_of(taken) == "m0"
        await first.close()
        # m1 and m2 were only prefetched, so they go back at once; m0 was taken and
        # stays with the session until acknowledged.
        second = conn.session().consumer(q)
        again = await receive_n(second, 2, timeout=10)
        assert sorted(text_of(m) for m in again) == ["m1", "m2"]
        await taken.acknowledge()
        await producer.send(T("marker"))
        (marker,) = await receive_n(second, 1, timeout=10)
        assert text_of(marker) == "marker"       # m0 was never redelivered


async def test_closing_the_session_returns_taken_unacknowledged_messages(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        await producer.send(T("only"))
        session = conn.session(ack_mode="client")
        consumer = session.consumer(q)
        taken = await consumer.receive(timeout=10)
        assert taken is not None
        await consumer.close()
        await session.close()
        other = conn.session().consumer(q)
        (back,) = await receive_n(other, 1, timeout=10)
        assert text_of(back) == "only" and back.redelivered and back.delivery_count == 2


async def test_recover_redelivers_each_message_exactly_once(server, uniq):
    q = emsfast.Queue(uniq("q"))
    count = 40
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        session = conn.session(ack_mode="client")
        consumer = session.consumer(q)
        for i in range(count):
            await producer.send_async(T(f"m{i}"), delivery_mode="non_persistent")
        await producer.flush()
        # Taking messages returns credit, so fresh deliveries are on the wire
        # while the recover is processed: they must not be handed out twice.
        assert len(await receive_n(consumer, 3, timeout=10)) == 3
        await session.recover()
        seen = await receive_n(consumer, count, timeout=10)
        texts = [text_of(m) for m in seen]
        assert sorted(texts) == sorted(f"m{i}" for i in range(count)), texts
        await seen[-1].acknowledge()
        await producer.send(T("marker"))
        (marker,) = await receive_n(consumer, 1, timeout=10)
        assert text_of(marker) == "marker"      # no duplicate came before it
