"""Queue browsers through a real daemon: snapshot, selector, batches, no consumption."""

from __future__ import annotations

import pytest

import emsfast
from emsfast._testbase.clientutil import connection, receive_n, text_of
from emsfast.errors import NotFoundError, SelectorError

pytestmark = pytest.mark.timeout(60)


async def _fill(conn, q, n, **props):
    producer = conn.session().producer(q)
    for i in range(n):
        await producer.send_async(emsfast.TextMessage(f"m{i}", properties={"n": i, **props}),
                                  delivery_mode="non_persistent")
    await producer.flush()
    return producer


async def test_browse_does_not_consume(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        await _fill(conn, q, 5)
        session = conn.session()
        seen = await session.browser(q, batch=2).messages()
        assert [text_of(m) for m in seen] == [f"m{i}" for i in range(5)]
        assert all(m.destination == q and m.message_id for m in seen)
        got = await receive_n(session.consumer(q), 5, timeout=10)
        assert [text_of(m) for m in got] == [f"m{i}" for i in range(5)]
        assert [m.message_id for m in got] == [m.message_id for m in seen]


async def test_browse_with_selector_and_priority_order(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        producer = await _fill(conn, q, 6)
        await producer.send(emsfast.TextMessage("urgent", properties={"n": 100}), priority=9)
        browser = conn.session().browser(q, "n >= 4")
        texts = [text_of(m) async for m in browser]
        assert texts == ["urgent", "m4", "m5"]


async def test_browse_is_a_snapshot(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        producer = await _fill(conn, q, 3)
        browser = conn.session().browser(q, batch=1)
        first = await browser.__anext__()
        await producer.send(emsfast.TextMessage("later"))
        rest = [text_of(m) async for m in browser]
        assert [text_of(first), *rest] == ["m0", "m1", "m2"]
        await browser.close()


async def test_browser_errors(server, uniq):
    async with connection(server.url) as conn:
        session = conn.session()
        with pytest.raises(SelectorError):
            session.browser(emsfast.Queue(uniq("q")), "a = (1")
        with pytest.raises(emsfast.errors.InvalidError, match="queues"):
            session.browser(emsfast.Topic(uniq("t")))   # type: ignore[arg-type]
        with pytest.raises(NotFoundError):
            await session.browser(emsfast.Queue("$TMP$.nope.1.1")).messages()
        # The connection carries on.
        await conn.ping()
