"""Bad input to the JMS features: a clear error to that client; the daemon and
other clients carry on (issue 5, "Bad input")."""

from __future__ import annotations

import pytest

import emsfast
from emsfast._testbase.clientutil import connection, receive_n, text_of
from emsfast.errors import (
    InvalidError,
    NotAllowedError,
    NotFoundError,
    SelectorError,
)
from emsfast.selector import MAX_SELECTOR_LENGTH

pytestmark = pytest.mark.timeout(60)

LONG = "a = 1 OR " * (MAX_SELECTOR_LENGTH // 9) + "a = 2"
BAD_SELECTORS = {
    "too long": (LONG, r"exceed max_selector_length \(4096\)"),
    "unbalanced open": ("(a = 1 AND (b = 2)", r"\)|parenthes"),
    "unbalanced close": ("a = 1)", r"\)|parenthes|unexpected"),
}


async def _still_serving(url: str, q: emsfast.Queue) -> None:
    async with connection(url) as other:
        session = other.session()
        await session.producer(q).send(emsfast.TextMessage("still here"))
        (msg,) = await receive_n(session.consumer(q), 1, timeout=10)
        assert text_of(msg) == "still here"


@pytest.mark.parametrize("case", list(BAD_SELECTORS))
async def test_bad_selector_client_and_server(server, uniq, case):
    text, pattern = BAD_SELECTORS[case]
    assert case != "too long" or len(text) > MAX_SELECTOR_LENGTH
    q, t = emsfast.Queue(uniq("q")), emsfast.Topic(uniq("t"))
    async with connection(server.url) as conn:
        session = conn.session()
        # The client refuses it at creation, for every kind of consumer.
        for make in (lambda: session.consumer(q, text), lambda: session.consumer(t, text),
                     lambda: session.shared_consumer(t, "s", text),
                     lambda: session.browser(q, text)):
            with pytest.raises(SelectorError, match=pattern):
                make()
        # A client that skips the check gets the server's refusal, for that request only.
        await session.ready
        for op, fields in (("consumer.create", {"session": session.id, "consumer": 9999,
                                                "dest_type": "topic", "dest": t.name}),
                           ("browser.create", {"browser": 9998, "dest": q.name})):
            with pytest.raises(InvalidError, match=pattern):
                await conn.request(op, {**fields, "selector": text})
        await conn.ping()
    await _still_serving(server.url, q)


async def test_jms_requests_with_bad_fields(server, uniq):
    async with connection(server.url) as conn:
        session = conn.session()
        await session.ready
        bad = [
            ("temp.create", {"dest_type": "queue", "dest": "$TMP$.someone.else.1"}),
            ("temp.create", {"dest_type": "queue", "dest": "plain.name"}),
            ("temp.create", {"dest_type": "bag", "dest": "x"}),
            ("browser.next", {"browser": 424242}),
            ("browser.next", {"browser": -1}),
            ("consumer.create", {"session": session.id, "consumer": 77, "dest_type": "queue",
                                 "dest": uniq("q"), "shared": True, "subscription": "s"}),
            ("consumer.create", {"session": session.id, "consumer": 78, "dest_type": "topic",
                                 "dest": uniq("t"), "shared": True}),
        ]
        for op, fields in bad:
            with pytest.raises((InvalidError, NotFoundError)):
                await conn.request(op, fields)
        tt = conn.temporary_topic()
        with pytest.raises(InvalidError, match="temporary topic"):
            await conn.request("consumer.create", {
                "session": session.id, "consumer": 79, "dest_type": "topic",
                "dest": tt.name, "durable": "d"})
        await conn.ping()
    await _still_serving(server.url, emsfast.Queue(uniq("after")))


async def test_destinations_config_does_not_allow(server_factory):
    srv = server_factory(queues="orders.>\n", topics="news.>\n")
    async with connection(srv.url) as conn, connection(srv.url) as bystander:
        session = conn.session()
        for attempt in (
            lambda: session.producer(emsfast.Queue("other.q")).send(emsfast.TextMessage("x")),
            lambda: session.consumer(emsfast.Queue("other.q")).receive(timeout=1),
            lambda: session.browser(emsfast.Queue("other.q")).messages(),
            lambda: session.shared_consumer(emsfast.Topic("other.t"), "s").receive(timeout=1),
            lambda: session.request(emsfast.Queue("other.q"), emsfast.TextMessage("?"), 1),
        ):
            with pytest.raises(NotAllowedError, match="other"):
                await attempt()
        # Temporary destinations need no entry (EMS.md 5.9).
        tq = session.temporary_queue()
        await session.producer(tq).send(emsfast.TextMessage("tmp ok"))
        (msg,) = await receive_n(session.consumer(tq), 1, timeout=10)
        assert text_of(msg) == "tmp ok"
        await _still_serving(srv.url, emsfast.Queue("orders.fine"))
        await bystander.ping()
