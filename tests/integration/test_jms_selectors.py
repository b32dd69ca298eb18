"""Selectors on every operator, through real topic subscribers (EMS.md 5.11).

One subscriber per selector, all on one connection with the producer, so each
subscription exists before the first publish. Each selector is wrapped as
``(S) OR mk = TRUE``: for messages without ``mk`` that is exactly S under
three-valued logic, and it lets the end marker through to every subscriber.
"""

from __future__ import annotations

import pytest

import emsfast
from emsfast._testbase.clientutil import connection, receive_until

pytestmark = pytest.mark.timeout(60)

# name -> (properties, send options, message headers)
MESSAGES: dict[str, tuple[dict[str, object], dict[str, object], dict[str, object]]] = {
    "m1": ({"n": 1, "s": "abc", "f": 1.5, "b": True}, {"priority": 4},
           {"jms_type": "t1", "correlation_id": "c1"}),
    "m2": ({"n": 5, "s": "a_c", "f": -2.0, "b": False}, {"priority": 9}, {"jms_type": "t2"}),
    "m3": ({"n": 10, "s": "xyz%"}, {"priority": 0}, {}),
    "m4": ({}, {"delivery_mode": "non_persistent"}, {}),
}

SELECTORS: list[tuple[str, set[str]]] = [
    ("n = 5", {"m2"}),
    ("n <> 5", {"m1", "m3"}),
    ("n < 5", {"m1"}),
    ("n > 5", {"m3"}),
    ("n <= 5", {"m1", "m2"}),
    ("n >= 5", {"m2", "m3"}),
    ("n + 1 = 6", {"m2"}),
    ("n - 1 = 0", {"m1"}),
    ("n * 2 = 20", {"m3"}),
    ("n / 2 = 5", {"m3"}),
    ("-n = -1", {"m1"}),
    ("f > 0", {"m1"}),
    ("f < 0 AND f > -3", {"m2"}),
    ("s LIKE 'a%'", {"m1", "m2"}),
    ("s LIKE 'a_c'", {"m1", "m2"}),
    ("s LIKE 'a!_c' ESCAPE '!'", {"m2"}),
    ("s LIKE 'xyz!%' ESCAPE '!'", {"m3"}),
    ("s NOT LIKE 'a%'", {"m3"}),
    ("s IN ('abc', 'xyz%')", {"m1", "m3"}),
    ("s NOT IN ('abc')", {"m2", "m3"}),
    ("n BETWEEN 2 AND 10", {"m2", "m3"}),
    ("n NOT BETWEEN 2 AND 10", {"m1"}),
    ("s IS NULL", {"m4"}),
    ("s IS NOT NULL", {"m1", "m2", "m3"}),
    ("b = TRUE", {"m1"}),
    ("b = FALSE", {"m2"}),
    ("NOT b", {"m2"}),
    ("NOT (n = 5)", {"m1", "m3"}),
    ("n > 1 AND s LIKE 'a%'", {"m2"}),
    ("n = 1 OR n = 10", {"m1", "m3"}),
    ("n > 100 OR s IS NULL", {"m4"}),
    ("JMSPriority > 4", {"m2"}),
    ("JMSPriority = 0", {"m3"}),
    ("JMSType = 't1'", {"m1"}),
    ("JMSType IN ('t1', 't2')", {"m1", "m2"}),
    ("JMSCorrelationID = 'c1'", {"m1"}),
    ("JMSDeliveryMode = 'NON_PERSISTENT'", {"m4"}),
    ("JMSMessageID LIKE 'ID:%'", {"m1", "m2", "m3", "m4"}),
    ("JMSTimestamp > 0 AND JMSRedelivered = FALSE", {"m1", "m2", "m3", "m4"}),
    ("unknown = 1", set()),
]


@pytest.mark.parametrize("kind", ["topic", "queue"])
async def test_selector_table(server, uniq, kind):
    async with connection(server.url) as conn:
        session = conn.session()
        if kind == "topic":
            topic = emsfast.Topic(uniq("sel"))
            consumers = [session.consumer(topic, f"({text}) OR mk = TRUE")
                         for text, _ in SELECTORS]
            producers = [session.producer(topic)]
        else:
            # Queue selectors filter at dispatch, not at publish: one queue each.
            queues = [emsfast.Queue(uniq("sel")) for _ in SELECTORS]
            consumers = [session.consumer(q, f"({text}) OR mk = TRUE")
                         for q, (text, _) in zip(queues, SELECTORS, strict=True)]
            producers = [session.producer(q) for q in queues]
        for producer in producers:
            for name, (props, opts, headers) in MESSAGES.items():
                msg = emsfast.TextMessage(name, properties=props, **headers)
                await producer.send_async(msg, **opts)   # type: ignore[arg-type]
            await producer.send_async(emsfast.TextMessage("end", properties={"mk": True}))
            await producer.flush()
        failures = []
        for consumer, (text, expected) in zip(consumers, SELECTORS, strict=True):
            got = {m.text for m in await receive_until(consumer, "end", timeout=10)} - {"end"}
            if got != expected:
                failures.append(f"{text!r}: got {sorted(got)}, expected {sorted(expected)}")
        assert not failures, "\n".join(failures)


async def test_selector_on_delivery_count_sees_redeliveries(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        await producer.send(emsfast.TextMessage("returned"))
        first = conn.session(ack_mode="client")
        (taken,) = await receive_until(first.consumer(q), "returned")
        await first.close()                 # unacknowledged: back on the queue
        await producer.send(emsfast.TextMessage("fresh"))
        again = conn.session().consumer(
            q, "JMSXDeliveryCount = 2 AND JMSRedelivered = TRUE")
        (msg,) = await receive_until(again, "returned")
        assert msg.delivery_count == 2 and msg.get("JMSXDeliveryCount") == 2
        fresh = conn.session().consumer(q, "JMSXDeliveryCount = 1")
        assert [m.text for m in await receive_until(fresh, "fresh")] == ["fresh"]
