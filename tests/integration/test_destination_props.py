"""queues.conf properties beyond limits (maxRedelivery, expiration), message TTL,
transacted sessions, and redelivery after a client's link is cut (issue 3 item 3).

A daemon of its own, so a property this module needs cannot break the others.
"""

from __future__ import annotations

import asyncio

import pytest

import emsfast
from emsfast._testbase.clientutil import connection, receive_n, receive_until, text_of
from emsfast._testbase.fault_proxy import FaultProxy

pytestmark = pytest.mark.timeout(60)

QUEUES_CONF = """\
>
redeliver.> maxRedelivery=2
expire.>    expiration=200msec
"""


@pytest.fixture(scope="module")
def server(module_server_factory):
    return module_server_factory(queues=QUEUES_CONF)


def T(text, **props):
    return emsfast.TextMessage(text, properties=props or None)


async def deliver_and_drop(conn, q, times):
    """Receive the head of ``q`` in a CLIENT session and close it unacked, ``times``
    times; return the delivery counts seen."""
    counts = []
    for _ in range(times):
        session = conn.session(ack_mode="client")
        got = await receive_n(session.consumer(q), 1)
        assert len(got) == 1
        counts.append(got[0].delivery_count)
        await session.close()
    return counts


async def test_max_redelivery_drops_the_message(server, uniq):
    q = emsfast.Queue(uniq("redeliver"))
    async with connection(server.url) as conn:
        await conn.session().producer(q).send(T("poison"))
        assert await deliver_and_drop(conn, q, 2) == [1, 2]
        session = conn.session()
        await session.producer(q).send(T("__marker__"))
        got = await receive_until(session.consumer(q), "__marker__")
    assert [text_of(m) for m in got] == ["__marker__"]


async def test_max_redelivery_preserved_goes_to_undelivered(server, uniq):
    q = emsfast.Queue(uniq("redeliver"))
    body = f"poison-{q.name}"
    async with connection(server.url) as conn:
        await (
            conn.session()
            .producer(q)
            .send(T(body, JMS_TIBCO_PRESERVE_UNDELIVERED=True), delivery_mode="persistent")
        )
        assert await deliver_and_drop(conn, q, 2) == [1, 2]
        undelivered = conn.session().consumer(emsfast.Queue("$sys.undelivered"))
        got = await receive_until(undelivered, body)
    assert text_of(got[-1]) == body


async def test_destination_expiration(server, uniq):
    q = emsfast.Queue(uniq("expire"))
    async with connection(server.url) as conn:
        session = conn.session()
        await session.producer(q).send(T("stale"))
        await asyncio.sleep(0.5)  # let the 200 ms lifetime from queues.conf run out
        other = emsfast.Queue(uniq("q"))
        await session.producer(q).send(T("__marker__"))
        got = await receive_until(session.consumer(q), "__marker__")
        assert [text_of(m) for m in got] == ["__marker__"]
        # The same message to a queue without the property lives on.
        await session.producer(other).send(T("fresh"))
        assert [text_of(m) for m in await receive_n(session.consumer(other), 1)] == ["fresh"]


async def test_producer_ttl_expires_messages(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        session = conn.session()
        producer = session.producer(q)
        await producer.send(T("short"), ttl=100)
        await producer.send(T("forever"), ttl=0)
        await asyncio.sleep(0.3)  # let the 100 ms TTL run out
        got = await receive_until(session.consumer(q), "forever")
    assert [text_of(m) for m in got] == ["forever"]


async def test_transacted_send_visible_only_after_commit(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        tx = conn.session(transacted=True)
        tx_producer = tx.producer(q)
        await tx_producer.send(T("t1"))
        await tx_producer.send(T("t2"))
        plain = conn.session()
        consumer = plain.consumer(q)
        await plain.producer(q).send(T("__before_commit__"))
        got = await receive_until(consumer, "__before_commit__")
        assert [text_of(m) for m in got] == ["__before_commit__"]
        await tx.commit()
        assert [text_of(m) for m in await receive_n(consumer, 2)] == ["t1", "t2"]


async def test_transacted_rollback_redelivers(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        await conn.session().producer(q).send(T("r1"))
        tx = conn.session(transacted=True)
        consumer = tx.consumer(q)
        first = await receive_n(consumer, 1)
        assert first[0].delivery_count == 1
        await tx.rollback()
        again = await receive_n(consumer, 1)
        assert text_of(again[0]) == "r1"
        assert again[0].redelivered is True and again[0].delivery_count == 2
        await tx.commit()
        await tx.close()
        session = conn.session()
        await session.producer(q).send(T("__marker__"))
        got = await receive_until(session.consumer(q), "__marker__")
    assert [text_of(m) for m in got] == ["__marker__"]


async def test_lost_connection_redelivers_unacked(server, uniq):
    """A client whose link dies holding unacked messages: they come back to the next
    consumer flagged redelivered."""
    q = emsfast.Queue(uniq("q"))
    proxy = await FaultProxy("127.0.0.1", server.port).start()
    try:
        async with connection(server.url) as direct:
            producer = direct.session().producer(q)
            await producer.send(T("held"))
            doomed = await emsfast.connect(proxy.url)
            try:
                got = await receive_n(doomed.session(ack_mode="client").consumer(q), 1)
                assert text_of(got[0]) == "held"
                proxy.cut()
                session = direct.session()
                again = await receive_n(session.consumer(q), 1, timeout=20)
                assert len(again) == 1, "unacked message not redelivered after the link died"
                assert text_of(again[0]) == "held"
                assert again[0].redelivered is True and again[0].delivery_count == 2
            finally:
                await doomed.close()
    finally:
        await proxy.close()
