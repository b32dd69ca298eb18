"""Holder dispatch rules: priority, round-robin under credit, limits, selectors."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from emsfast._core.message import encode_message
from emsfast.config.destinations import DestinationProps, OverflowPolicy
from emsfast.consts import BODY_TEXT, NON_PERSISTENT
from emsfast.errors import LimitError
from emsfast.selector import Selector, compile_selector
from emsfast.server.holders import Holder
from emsfast.server.messages import ServerMessage


class Owner:
    server_name = "EMS-TEST"

    def __init__(self) -> None:
        self.discarded: list[tuple[int, str]] = []

    def discard(self, holder: Holder, msg: ServerMessage, reason: str) -> None:
        self.discarded.append((msg.id, reason))


class Taker:
    """A consumer double recording what it was handed."""

    def __init__(self, credit: int, selector: Selector | None = None) -> None:
        self.credit = credit
        self.selector = selector
        self.got: list[tuple[int, int]] = []
        self.writable = True

    def deliver(self, holder: Holder, msg: ServerMessage, count: int) -> None:
        self.credit -= 1
        self.got.append((msg.id, count))


_ids = iter(range(1, 1_000_000))


def message(priority: int = 4, expiration: int = 0, props: dict[str, object] | None = None,
            size: int = 10) -> ServerMessage:
    blob = encode_message(BODY_TEXT, NON_PERSISTENT, priority, 0, expiration, None, props,
                          b"x" * size)
    return ServerMessage(next(_ids), blob, NON_PERSISTENT, priority, 0, expiration, 1)


def holder(**props: object) -> tuple[Holder, Owner]:
    owner = Owner()
    return Holder(owner, "q:t", "t", replace(DestinationProps(), **props)), owner


def put(h: Holder, msg: ServerMessage) -> ServerMessage:
    h.admit(msg.size)
    h.enqueue(msg)
    return msg


def test_higher_priority_first_then_fifo() -> None:
    h, _ = holder()
    msgs = [put(h, message(p)) for p in (1, 9, 4, 9, 0)]
    t = Taker(credit=10)
    h.add_consumer(t)
    h.dispatch()
    assert [mid for mid, _ in t.got] == [msgs[i].id for i in (1, 3, 2, 0, 4)]


def test_round_robin_respects_credit() -> None:
    h, _ = holder()
    a, b = Taker(credit=1), Taker(credit=3)
    h.add_consumer(a)
    h.add_consumer(b)
    for _ in range(6):
        put(h, message())
    assert len(a.got) == 1 and len(b.got) == 3
    assert h.ready == 2            # waits for credit
    a.credit = 5
    h.dispatch()
    assert h.ready == 0 and len(a.got) == 3


def test_exclusive_sends_everything_to_the_first_consumer() -> None:
    h, _ = holder(exclusive=True)
    a, b = Taker(credit=10), Taker(credit=10)
    h.add_consumer(a)
    h.add_consumer(b)
    for _ in range(4):
        put(h, message())
    assert len(a.got) == 4 and b.got == []
    h.remove_consumer(a)
    put(h, message())
    assert len(b.got) == 1


def test_limits_reject_with_a_clear_error() -> None:
    h, _ = holder(maxmsgs=2)
    put(h, message())
    put(h, message())
    with pytest.raises(LimitError, match="maxmsgs=2"):
        h.admit(10)
    h2, _ = holder(maxbytes=25)
    h2.admit(20)
    with pytest.raises(LimitError, match="maxbytes=25"):
        h2.admit(10)


def test_discard_old_drops_the_oldest_ready_message() -> None:
    h, owner = holder(maxmsgs=2, overflow_policy=OverflowPolicy.DISCARD_OLD)
    first = put(h, message())
    put(h, message())
    put(h, message())
    assert owner.discarded == [(first.id, "discardOld")]
    assert h.count == 2


def test_ack_releases_room() -> None:
    h, _ = holder(maxmsgs=1)
    msg = put(h, message())
    t = Taker(credit=1)
    h.add_consumer(t)
    h.dispatch()
    with pytest.raises(LimitError):
        h.admit(10)                 # delivered but unacked still counts (EMS)
    h.acked(msg)
    h.admit(10)


def test_restored_message_comes_back_first_with_its_count() -> None:
    h, _ = holder()
    first = put(h, message())
    put(h, message())
    t = Taker(credit=1)
    h.add_consumer(t)
    h.dispatch()
    assert t.got == [(first.id, 1)]
    h.remove_consumer(t)
    h.restore(first, 1)
    t2 = Taker(credit=1)
    h.add_consumer(t2)
    h.dispatch()
    assert t2.got == [(first.id, 2)]


def test_expired_messages_are_discarded_not_delivered() -> None:
    h, owner = holder()
    old = put(h, message(expiration=int(time.time() * 1000) - 1))
    fresh = put(h, message())
    t = Taker(credit=5)
    h.add_consumer(t)
    h.dispatch()
    assert [mid for mid, _ in t.got] == [fresh.id]
    assert owner.discarded == [(old.id, "expired")]
    assert h.count == 1


def test_selectors_route_and_leave_unmatched_messages() -> None:
    h, _ = holder()
    big = Taker(credit=10, selector=compile_selector("n > 5"))
    small = Taker(credit=10, selector=compile_selector("n <= 5"))
    h.add_consumer(big)
    h.add_consumer(small)
    m7 = put(h, message(props={"n": 7}))
    m3 = put(h, message(props={"n": 3}))
    nobody = put(h, message(props={"other": 1}))
    assert [mid for mid, _ in big.got] == [m7.id]
    assert [mid for mid, _ in small.got] == [m3.id]
    assert h.iter_ready() == [nobody]


async def test_redelivery_delay_parks_returned_messages_under_one_timer() -> None:
    import asyncio

    h, _ = holder(redelivery_delay_ms=50)
    taker = Taker(credit=10)
    h.add_consumer(taker)
    first, second = put(h, message()), put(h, message())
    assert [mid for mid, _ in taker.got] == [first.id, second.id]
    h.park(first, 1)
    h.park(second, 1)
    assert h.ready == 0 and h.count == 2            # parked still counts for limits
    await asyncio.sleep(0.01)
    assert len(taker.got) == 2                      # not yet
    await asyncio.sleep(0.1)
    assert taker.got[2:] == [(first.id, 2), (second.id, 2)]


async def test_purge_drops_parked_messages_and_their_timer() -> None:
    import asyncio

    h, _ = holder(redelivery_delay_ms=20)
    h.add_consumer(Taker(credit=1))
    msg = put(h, message())
    h.park(msg, 1)
    assert [m.id for m in h.purge()] == [msg.id]
    await asyncio.sleep(0.05)
    assert h.count == 0 and h.ready == 0


def _ready_sum(h: Holder) -> int:
    return sum(m.size for m in h.iter_ready())


def test_ready_bytes_follow_every_way_in_and_out() -> None:
    """ready_bytes (the pending-bytes cap of non-durable subscriptions) must equal the
    size of the messages waiting, whatever moved them."""
    h, _ = holder(overflow_policy=OverflowPolicy.DISCARD_OLD, maxmsgs=6)
    msgs = [put(h, message(priority=p % 10, size=10 + p)) for p in range(6)]
    assert h.ready_bytes == _ready_sum(h) == sum(m.size for m in msgs)
    put(h, message(size=99))                    # discardOld drops the oldest
    assert h.ready_bytes == _ready_sum(h)
    taker = Taker(credit=3)
    h.add_consumer(taker)
    h.dispatch()
    assert len(taker.got) == 3 and h.ready_bytes == _ready_sum(h)
    h.restore(msgs[-1], 1)
    assert h.ready_bytes == _ready_sum(h)
    selective = Taker(credit=10, selector=compile_selector("TRUE"))
    h.add_consumer(selective)
    taker.credit = 0
    h.dispatch()
    assert h.ready == 0 and h.ready_bytes == 0
    h.enqueue(message(expiration=int(time.time() * 1000) - 1))   # expires at dispatch
    assert h.ready_bytes == 0
    h.remove_consumer(selective)
    h.enqueue(message(size=7))
    assert h.ready_bytes == _ready_sum(h) > 0
    h.purge()
    assert h.ready_bytes == 0
