"""Queues end to end against a real emsfastd (issue 3 item 3).

One daemon serves the module; each test uses its own queue names. "Nothing else
arrived" is shown with a marker message sent last, never with an idle wait.
"""

from __future__ import annotations

import asyncio

import pytest

import emsfast
from emsfast import errors
from emsfast._testbase.clientutil import (
    connection,
    eventually,
    mode_is,
    receive_n,
    receive_shared,
    receive_until,
    text_of,
)

pytestmark = pytest.mark.timeout(60)

QUEUES_CONF = """\
>
pf.>        prefetch=2
excl.>      exclusive
limited.>   maxmsgs=3
bytes.>     maxbytes=1KB
"""


@pytest.fixture(scope="module")
def server(module_server_factory):
    return module_server_factory(queues=QUEUES_CONF)


def T(text, **props):
    return emsfast.TextMessage(text, properties=props or None)


async def only_marker_left(url, queue):
    """Assert ``queue`` holds nothing: a fresh consumer's first message is our marker."""
    async with connection(url) as conn:
        session = conn.session()
        await session.producer(queue).send(T("__marker__"))
        got = await receive_until(session.consumer(queue), "__marker__")
        assert [text_of(m) for m in got] == ["__marker__"]


async def test_point_to_point(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        session = conn.session()
        producer = session.producer(q)
        for i in range(5):
            await producer.send(T(f"m{i}", i=i))
        got = await receive_n(session.consumer(q), 5)
        assert [text_of(m) for m in got] == [f"m{i}" for i in range(5)]
        assert [m.properties["i"] for m in got] == list(range(5))
        assert all(not m.redelivered and m.delivery_count == 1 for m in got)
    await only_marker_left(server.url, q)


async def test_receive_without_timeout_returns_waiting_messages(server, uniq):
    """receive() with no timeout on a new consumer returns the messages already on the
    queue (they may arrive before the server's answer to the consumer's creation)."""
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        session = conn.session()
        producer = session.producer(q)
        for i in range(3):
            await producer.send(T(f"m{i}"))
        consumer = session.consumer(q)
        got = []
        for _ in range(3):
            # wait_for only guards against a hang; receive() itself has no timeout.
            got.append(await asyncio.wait_for(consumer.receive(), 10))
        assert [text_of(m) for m in got] == ["m0", "m1", "m2"]


async def test_round_robin_two_consumers(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        # Consumers and producer share the connection, so the server sees both
        # consumers before the first message.
        c1 = conn.session().consumer(q)
        c2 = conn.session().consumer(q)
        producer = conn.session().producer(q)
        for i in range(20):
            await producer.send(T(f"m{i}"))
        got1, got2 = await receive_shared([c1, c2], 20)
    texts1, texts2 = [text_of(m) for m in got1], [text_of(m) for m in got2]
    assert texts1 and texts2, (texts1, texts2)
    assert len(texts1) + len(texts2) == 20
    assert set(texts1) | set(texts2) == {f"m{i}" for i in range(20)}
    # Each consumer sees its share in send order.
    assert texts1 == sorted(texts1, key=lambda t: int(t[1:]))
    assert texts2 == sorted(texts2, key=lambda t: int(t[1:]))


async def test_persistent_send_is_confirmed_and_delivered(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        session = conn.session()
        msg = T("kept")
        await session.producer(q).send(msg, delivery_mode="persistent")
        assert msg.message_id, "persistent send returned without a message id"
        assert str(msg.message_id).startswith("ID:")
        got = await receive_n(session.consumer(q), 1)
        assert len(got) == 1
        assert text_of(got[0]) == "kept"
        assert got[0].message_id == msg.message_id
        assert mode_is(got[0].delivery_mode, "persistent")


@pytest.mark.parametrize("mode", ["non_persistent", "reliable"])
async def test_non_persistent_and_reliable(server, uniq, mode):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        session = conn.session()
        producer = session.producer(q)
        for i in range(3):
            await producer.send(T(f"{mode}{i}"), delivery_mode=mode)
        got = await receive_n(session.consumer(q), 3)
        assert [text_of(m) for m in got] == [f"{mode}{i}" for i in range(3)]
        assert all(mode_is(m.delivery_mode, mode) for m in got)


async def test_default_delivery_mode_is_persistent(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        session = conn.session()
        msg = T("default")
        await session.producer(q).send(msg)
        assert msg.message_id
        got = await receive_n(session.consumer(q), 1)
        assert mode_is(got[0].delivery_mode, "persistent")


async def test_priorities_higher_first(server, uniq):
    q = emsfast.Queue(uniq("q"))
    order = [3, 0, 9, 5, 1, 8, 2, 7, 4, 6]
    async with connection(server.url) as conn:
        session = conn.session()
        producer = session.producer(q)
        for p in order:
            await producer.send(T(f"p{p}"), delivery_mode="persistent", priority=p)
        got = await receive_n(session.consumer(q), 10)
    assert [m.priority for m in got] == list(range(9, -1, -1))
    assert [text_of(m) for m in got] == [f"p{p}" for p in range(9, -1, -1)]


async def test_prefetch_credit_does_not_hoard(server, uniq):
    """queues.conf says prefetch=2: a consumer holds at most 2 messages it has not
    taken, so a second consumer gets the rest of the backlog."""
    q = emsfast.Queue(uniq("pf"))
    async with connection(server.url) as conn_a, connection(server.url) as conn_b:
        producer = conn_a.session().producer(q)
        for i in range(20):
            await producer.send(T(f"m{i}"))
        a = conn_a.session().consumer(q)
        (first,) = await receive_n(a, 1)
        assert text_of(first) == "m0"
        # a took one and may hold two more; everything else must be available to b.
        b = conn_b.session().consumer(q)
        got_b = await receive_n(b, 17, timeout=15)
        assert len(got_b) == 17, f"second consumer got only {len(got_b)}: first one hoarded"
        rest_a, rest_b = await receive_shared([a, b], 2)
    texts = [text_of(first)] + [text_of(m) for m in got_b + rest_a + rest_b]
    assert sorted(texts) == sorted(f"m{i}" for i in range(20))


async def test_auto_ack_is_not_redelivered(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        await conn.session().producer(q).send(T("once"))
        session = conn.session(ack_mode="auto")
        consumer = session.consumer(q)
        got = await receive_n(consumer, 1)
        assert text_of(got[0]) == "once"
        await consumer.close()
        await session.close()
    await only_marker_left(server.url, q)


async def test_client_ack_acknowledges_all_received_and_redelivers_the_rest(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        for i in range(1, 5):
            await producer.send(T(f"m{i}"))
        session = conn.session(ack_mode="client")
        consumer = session.consumer(q)
        got = await receive_n(consumer, 3)
        assert [text_of(m) for m in got] == ["m1", "m2", "m3"]
        # Acknowledging the first message acknowledges all three received so far.
        await got[0].acknowledge()
        m4 = await receive_n(consumer, 1)
        assert text_of(m4[0]) == "m4"
        await consumer.close()
        await session.close()

    async with connection(server.url) as conn:
        session = conn.session()
        await session.producer(q).send(T("__marker__"))
        again = await receive_until(session.consumer(q), "__marker__")
    assert [text_of(m) for m in again] == ["m4", "__marker__"]
    assert again[0].redelivered is True
    assert again[0].delivery_count == 2
    assert again[1].redelivered is False
    assert again[1].delivery_count == 1


async def test_client_ack_covers_every_consumer_of_the_session(server, uniq):
    q1, q2 = emsfast.Queue(uniq("q")), emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        producer_session = conn.session()
        await producer_session.producer(q1).send(T("one"))
        await producer_session.producer(q2).send(T("two"))
        session = conn.session(ack_mode="client")
        got1 = await receive_n(session.consumer(q1), 1)
        got2 = await receive_n(session.consumer(q2), 1)
        assert [text_of(m) for m in got1 + got2] == ["one", "two"]
        await got2[0].acknowledge()  # acknowledges "one" too
        await session.close()
    await only_marker_left(server.url, q1)
    await only_marker_left(server.url, q2)


async def test_recover_redelivers_unacked(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        await conn.session().producer(q).send(T("r"))
        session = conn.session(ack_mode="client")
        consumer = session.consumer(q)
        (first,) = await receive_n(consumer, 1)
        assert (first.redelivered, first.delivery_count) == (False, 1)
        await session.recover()
        (again,) = await receive_n(consumer, 1)
        assert text_of(again) == "r"
        assert (again.redelivered, again.delivery_count) == (True, 2)
        await again.acknowledge()
        await session.close()
    await only_marker_left(server.url, q)


async def test_delivery_count_counts_each_attempt(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        await conn.session().producer(q).send(T("again"))
        seen = []
        for _ in range(3):
            session = conn.session(ack_mode="client")
            got = await receive_n(session.consumer(q), 1)
            assert len(got) == 1
            seen.append((got[0].redelivered, got[0].delivery_count))
            await session.close()
    assert seen == [(False, 1), (True, 2), (True, 3)]


async def test_explicit_ack_acknowledges_only_that_message(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        for i in range(1, 4):
            await producer.send(T(f"m{i}"))
        session = conn.session(ack_mode="explicit")
        got = await receive_n(session.consumer(q), 3)
        await got[1].acknowledge()
        await session.close()
        session = conn.session()
        await session.producer(q).send(T("__marker__"))
        again = await receive_until(session.consumer(q), "__marker__")
    assert [text_of(m) for m in again] == ["m1", "m3", "__marker__"]
    assert [m.redelivered for m in again] == [True, True, False]


async def test_dups_ok_delivers_everything_and_flags_any_duplicate(server, uniq):
    q = emsfast.Queue(uniq("q"))
    sent = [f"m{i}" for i in range(5)]
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        for text in sent:
            await producer.send(T(text))
        session = conn.session(ack_mode="dups_ok")
        consumer = session.consumer(q)
        got = await receive_n(consumer, 5)
        assert [text_of(m) for m in got] == sent
        await consumer.close()
        await session.close()

        session = conn.session()
        await session.producer(q).send(T("__marker__"))
        after = await receive_until(session.consumer(q), "__marker__")
    # Lazy acks may let a message come again, but only flagged as redelivered.
    for m in after[:-1]:
        assert text_of(m) in sent and m.redelivered is True


async def test_no_acknowledge_never_redelivers(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        for i in range(3):
            await producer.send(T(f"m{i}"))
        session = conn.session(ack_mode="none")
        got = await receive_n(session.consumer(q), 3)
        assert [text_of(m) for m in got] == ["m0", "m1", "m2"]
        await session.close()
    await only_marker_left(server.url, q)


async def test_exclusive_queue_one_consumer_gets_everything(server, uniq):
    q = emsfast.Queue(uniq("excl"))
    async with connection(server.url) as conn1, connection(server.url) as conn2:
        s1 = conn1.session()
        c1 = s1.consumer(q)
        producer = conn2.session().producer(q)
        await producer.send(T("m0"))
        assert text_of((await receive_n(c1, 1))[0]) == "m0"
        # c2 shares the producer's connection, so it exists before m1..m10.
        c2 = conn2.session().consumer(q)
        for i in range(1, 11):
            await producer.send(T(f"m{i}"))
        got = await receive_n(c1, 10)
        assert [text_of(m) for m in got] == [f"m{i}" for i in range(1, 11)]
        # When the first consumer goes, the standing-by one takes over.
        await s1.close()
        await producer.send(T("after"))
        taken = await receive_until(c2, "after")
        assert [text_of(m) for m in taken] == ["after"]


async def test_maxmsgs_rejects_send_and_server_keeps_serving(server, uniq):
    q = emsfast.Queue(uniq("limited"))
    async with connection(server.url) as conn:
        session = conn.session()
        producer = session.producer(q)
        for i in range(3):
            await producer.send(T(f"m{i}"), delivery_mode="persistent")
        with pytest.raises(errors.LimitError) as info:
            await producer.send(T("m3"), delivery_mode="persistent")
        assert "maxmsgs" in str(info.value)
        # Logged once per connection (trace item LIMITS), naming the queue and limit.
        await asyncio.to_thread(server.wait_for_line, f"message refused: queue '{q.name}' "
                                "has reached its limit of maxmsgs=3", 10)

        # Same connection and producer still work once there is room again.
        got = await receive_n(session.consumer(q), 1)
        assert text_of(got[0]) == "m0"

        async def send_fits():
            try:
                await producer.send(T("m4"), delivery_mode="persistent")
                return True
            except errors.LimitError:
                return False

        await eventually(send_fits)


async def test_async_sends_surface_limit_errors(server, uniq):
    q = emsfast.Queue(uniq("limited"))
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        with pytest.raises(errors.LimitError):
            for i in range(5):
                await producer.send_async(T(f"m{i}"), delivery_mode="persistent")
            await producer.flush()
        # The three that fit are there, in order.
        session = conn.session()
        got = await receive_n(session.consumer(q), 3)
        assert [text_of(m) for m in got] == ["m0", "m1", "m2"]


async def test_maxbytes_rejects_send(server, uniq):
    q = emsfast.Queue(uniq("bytes"))
    body = "x" * 600
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        await producer.send(T(body), delivery_mode="persistent")
        with pytest.raises(errors.LimitError) as info:
            # 1KB holds one 600-byte message; the second or third must be refused.
            for _ in range(2):
                await producer.send(T(body), delivery_mode="persistent")
        assert "maxbytes" in str(info.value)


async def test_selector_on_queue_leaves_unselected_for_others(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        for k in range(10):
            await producer.send(T(f"k{k}", k=k))
        picky = conn.session().consumer(q, selector="k > 5")
        got = await receive_n(picky, 4)
        assert [text_of(m) for m in got] == ["k6", "k7", "k8", "k9"]
        rest = await receive_n(conn.session().consumer(q), 6)
        assert [text_of(m) for m in rest] == [f"k{k}" for k in range(6)]


async def test_destination_not_allowed(server_factory):
    srv = server_factory(queues="orders.>\n")
    async with connection(srv.url) as conn:
        session = conn.session()
        await session.producer(emsfast.Queue("orders.a")).send(T("ok"))
        with pytest.raises(errors.NotAllowedError) as info:
            producer = session.producer(emsfast.Queue("other"))
            await producer.send(T("nope"))
        assert "other" in str(info.value)
        with pytest.raises(errors.NotAllowedError):
            consumer = conn.session().consumer(emsfast.Queue("other"))
            await consumer.receive(timeout=5)
        # The connection is still good for allowed names.
        got = await receive_n(conn.session().consumer(emsfast.Queue("orders.a")), 1)
        assert text_of(got[0]) == "ok"


async def test_message_types_round_trip(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        session = conn.session()
        producer = session.producer(q)
        await producer.send(emsfast.BytesMessage(b"\x00\xffraw"))
        await producer.send(emsfast.MapMessage({"a": 1, "b": "two", "c": 2.5}))
        await producer.send(emsfast.Message(properties={"only": True}))
        got = await receive_n(session.consumer(q), 3)
    assert isinstance(got[0], emsfast.BytesMessage) and bytes(got[0].body) == b"\x00\xffraw"
    assert isinstance(got[1], emsfast.MapMessage) and dict(got[1].body) == {
        "a": 1,
        "b": "two",
        "c": 2.5,
    }
    assert got[2].properties == {"only": True}


def test_blocking_facade(server, uniq):
    import emsfast.blocking

    q = emsfast.Queue(uniq("q"))
    with emsfast.blocking.connect(server.url) as conn:
        session = conn.session()
        msg = emsfast.TextMessage("sync", properties={"n": 1})
        session.producer(q).send(msg)
        assert msg.message_id
        got = session.consumer(q).receive(timeout=10)
        assert got is not None and text_of(got) == "sync" and got.properties == {"n": 1}
