"""redeliveryDelay (EMS.md 5.4) against a real daemon.

EMS accepts no delay under 15 s, so this waits that long once, on one loop only;
the timer logic itself is covered with short delays in tests/unit/test_holders.py.
"""

from __future__ import annotations

import time

import pytest

import emsfast
from emsfast._testbase.clientutil import connection, receive_n, text_of

pytestmark = pytest.mark.timeout(60)


async def test_returned_message_comes_back_only_after_the_delay(server_factory, uniq,
                                                                loop_factory):
    if loop_factory != "asyncio":
        pytest.skip("waits 15 s; once on the reference loop is enough")
    srv = server_factory(queues="slow.> redeliveryDelay=15sec\n>\n")
    slow, fast = emsfast.Queue(uniq("slow")), emsfast.Queue(uniq("fast"))
    async with connection(srv.url) as conn:
        session = conn.session(ack_mode="client")
        producer = conn.session().producer(slow)
        await producer.send(emsfast.TextMessage("later"))
        await conn.session().producer(fast).send(emsfast.TextMessage("now"))
        slow_consumer = session.consumer(slow)
        fast_consumer = session.consumer(fast)
        (first,) = await receive_n(slow_consumer, 1, timeout=10)
        (quick,) = await receive_n(fast_consumer, 1, timeout=10)
        returned_at = time.monotonic()
        await session.recover()
        # The queue without a delay redelivers at once; the delayed one does not.
        (again,) = await receive_n(fast_consumer, 1, timeout=10)
        assert text_of(again) == "now" and again.redelivered
        assert await slow_consumer.receive(timeout=2) is None
        (back,) = await receive_n(slow_consumer, 1, timeout=30)
        assert text_of(back) == "later" and back.delivery_count == 2
        assert time.monotonic() - returned_at >= 14
        await back.acknowledge()
