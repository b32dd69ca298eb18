"""One contract suite for every Store implementation (STYLE.md: store/base.py).

Each test runs on every backend in STORES (a factory given a fresh directory).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from emsfast.store import DurableRecord, MemoryStore, Store, StoredMessage
from emsfast.store.lmdb_store import LmdbStore

STORES: dict[str, Callable[[Path], Store]] = {
    "memory": lambda d: MemoryStore(),
    "lmdb": lambda d: LmdbStore(str(d / "datastore")),
}


@pytest.fixture(params=sorted(STORES))
def opened(request: pytest.FixtureRequest,
           tmp_path: Path) -> Iterator[tuple[Store, asyncio.AbstractEventLoop]]:
    loop = asyncio.new_event_loop()
    store = STORES[request.param](tmp_path)
    store.open(loop)
    try:
        yield store, loop
    finally:
        store.close()
        loop.close()


def B(text: bytes) -> bytes:
    """A valid message blob carrying ``text`` (stores index the message header)."""
    import emsfast
    from emsfast.consts import PERSISTENT

    return bytes(emsfast.BytesMessage(text).encode(PERSISTENT, 4, 0, 0, emsfast.Queue("q")))


def wait(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
    loop.run_until_complete(asyncio.wait_for(fut, 10))


def body(store: Store, m: StoredMessage) -> bytes:
    """The blob, whether recovered with it or as an index entry only."""
    return m.blob if m.blob is not None else store.load_blob(m.holder, m.message_id)


def messages(store: Store) -> list[StoredMessage]:
    return list(store.recover().messages)


def test_put_then_recover_in_id_order(opened: tuple[Store, asyncio.AbstractEventLoop]) -> None:
    store, loop = opened
    store.put_message("$sys.nonfailsafe", "q:b", 7, B(b"seven"))
    wait(loop, store.put_message("$sys.failsafe", "q:a", 3, B(b"three")))
    state = store.recover()
    assert [(m.holder, m.message_id, body(store, m)) for m in state.messages] == [
        ("q:a", 3, B(b"three")), ("q:b", 7, B(b"seven"))]
    assert state.max_message_id == 7


def test_writes_of_one_turn_share_a_batch_future(
        opened: tuple[Store, asyncio.AbstractEventLoop]) -> None:
    store, loop = opened
    futs = {store.put_message("$sys.nonfailsafe", "q:a", i, B(b"x")) for i in range(1, 50)}
    assert len(futs) < 49            # group commit: many writes, few futures
    for fut in futs:
        wait(loop, fut)
    assert len(messages(store)) == 49


def test_remove_after_put_is_applied_in_order(
        opened: tuple[Store, asyncio.AbstractEventLoop]) -> None:
    store, loop = opened
    store.put_message("$sys.nonfailsafe", "q:a", 1, B(b"one"))
    store.put_message("$sys.nonfailsafe", "q:a", 2, B(b"two"))
    wait(loop, store.remove_message("q:a", 1))
    assert [m.message_id for m in messages(store)] == [2]


def test_delivery_count_is_kept(opened: tuple[Store, asyncio.AbstractEventLoop]) -> None:
    store, loop = opened
    store.put_message("$sys.nonfailsafe", "q:a", 1, B(b"one"))
    wait(loop, store.set_delivery_count("q:a", 1, 3))
    (msg,) = messages(store)
    assert msg.delivery_count == 3


def test_remove_holder_drops_only_its_messages(
        opened: tuple[Store, asyncio.AbstractEventLoop]) -> None:
    store, loop = opened
    store.put_message("$sys.nonfailsafe", "q:a", 1, B(b"one"))
    store.put_message("$sys.nonfailsafe", "q:b", 2, B(b"two"))
    wait(loop, store.remove_holder("q:a"))
    assert [m.holder for m in messages(store)] == ["q:b"]


def test_durables_round_trip_and_removal_drops_messages(
        opened: tuple[Store, asyncio.AbstractEventLoop]) -> None:
    store, loop = opened
    rec = DurableRecord(key="cid:sub", topic="prices.>", selector="n > 1", nolocal=True,
                        client_id="cid", name="sub")
    store.put_durable(rec)
    wait(loop, store.put_message("$sys.nonfailsafe", "d:cid:sub", 5, B(b"m")))
    state = store.recover()
    assert state.durables == [rec]
    assert [m.holder for m in state.messages] == ["d:cid:sub"]
    wait(loop, store.remove_durable("cid:sub"))
    state = store.recover()
    assert state.durables == [] and list(state.messages) == []


def test_destinations_round_trip(opened: tuple[Store, asyncio.AbstractEventLoop]) -> None:
    store, loop = opened
    store.put_destination("queue", "orders")
    wait(loop, store.put_destination("topic", "prices"))
    assert store.recover().destinations == [("queue", "orders"), ("topic", "prices")]
    wait(loop, store.remove_destination("queue", "orders"))
    assert store.recover().destinations == [("topic", "prices")]


def test_flush_resolves(opened: tuple[Store, asyncio.AbstractEventLoop]) -> None:
    store, loop = opened
    store.put_message("$sys.nonfailsafe", "q:a", 1, B(b"one"))
    wait(loop, store.flush())
    assert len(messages(store)) == 1


def test_delivery_count_survives_other_writes_and_goes_with_the_message(
        opened: tuple[Store, asyncio.AbstractEventLoop]) -> None:
    store, loop = opened
    store.put_message("$sys.failsafe", "q:a", 1, B(b"one"))
    store.put_message("$sys.failsafe", "q:a", 2, B(b"two"))
    wait(loop, store.set_delivery_count("q:a", 2, 1))
    wait(loop, store.remove_message("q:a", 2))
    wait(loop, store.put_message("$sys.failsafe", "q:a", 3, B(b"three")))
    assert [(m.message_id, m.delivery_count) for m in messages(store)] == [
        (1, 0), (3, 0)]


def test_holder_in_two_stores(opened: tuple[Store, asyncio.AbstractEventLoop]) -> None:
    # stores.conf may move a destination to another store; old messages stay put.
    store, loop = opened
    store.put_message("$sys.nonfailsafe", "q:a", 1, B(b"one"))
    wait(loop, store.put_message("$sys.failsafe", "q:a", 2, B(b"two")))
    wait(loop, store.remove_message("q:a", 1))
    assert [m.message_id for m in messages(store)] == [2]
    wait(loop, store.remove_holder("q:a"))
    assert messages(store) == []


def test_many_messages_in_id_order_across_holders(
        opened: tuple[Store, asyncio.AbstractEventLoop]) -> None:
    store, loop = opened
    for i in range(1, 2001):
        store.put_message("$sys.nonfailsafe", f"q:{i % 7}", i, B(i.to_bytes(4, "big")))
    wait(loop, store.flush())
    msgs = messages(store)
    # Id order within each holder (what rebuilding a queue needs).
    for h in range(7):
        ids = [m.message_id for m in msgs if m.holder == f"q:{h}"]
        assert ids == sorted(ids) and len(ids) in (285, 286)
    assert sorted(m.message_id for m in msgs) == list(range(1, 2001))
    assert all(body(store, m) == B(m.message_id.to_bytes(4, "big")) for m in msgs)


def test_delivery_marks_are_written_by_flush_and_dropped_by_removal(
        opened: tuple[Store, asyncio.AbstractEventLoop]) -> None:
    store, loop = opened
    store.put_message("$sys.failsafe", "q:a", 1, B(b"one"))
    wait(loop, store.put_message("$sys.failsafe", "q:a", 2, B(b"two")))
    store.mark_delivered("q:a", 1)
    store.mark_delivered("q:a", 2)
    store.mark_delivered("q:nothing", 3)
    store.remove_message("q:a", 2)
    wait(loop, store.flush())
    assert [(m.message_id, m.delivery_count) for m in messages(store)] == [(1, 1)]


def test_a_later_write_resolves_only_after_earlier_ones_in_any_store(
        opened: tuple[Store, asyncio.AbstractEventLoop]) -> None:
    # A durable's record, then (next turn) a message for it in another store: once
    # the message's future resolves, the durable must be durable too.
    store, loop = opened
    first = store.put_durable(DurableRecord(key="c:s", topic="t", name="s"))

    async def next_turn() -> asyncio.Future[None]:
        await asyncio.sleep(0)
        return store.put_message("$sys.failsafe", "d:c:s", 1, B(b"m"))

    second = loop.run_until_complete(next_turn())
    wait(loop, second)
    assert first.done()
