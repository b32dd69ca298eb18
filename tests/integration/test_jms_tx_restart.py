"""A transaction open when the server dies is rolled back, never half-applied.

With the in-memory store a restart loses every message anyway, so only the first
test means something today; the second needs a persistent store and is skipped,
by feature, until the LMDB store (``emsfast.store.lmdb_store.LmdbStore``) exists.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator

import pytest

import emsfast
from emsfast._testbase.clientutil import connection, receive_n, receive_until, text_of
from emsfast._testbase.server_process import ServerProcess

pytestmark = pytest.mark.timeout(60)

HAS_PERSISTENT_STORE = importlib.util.find_spec("emsfast.store.lmdb_store") is not None


@contextlib.contextmanager
def restarted(srv: ServerProcess) -> Iterator[ServerProcess]:
    """Kill ``srv`` (a crash, no shutdown) and start a daemon on the same store."""
    srv.kill()
    again = ServerProcess(srv.workdir, name=srv.name)
    try:
        again.start()
        yield again
    finally:
        again.kill()


def _once(loop_factory: str) -> None:
    if loop_factory != "asyncio":
        pytest.skip("restarts a daemon; once on the reference loop is enough")


async def test_uncommitted_sends_never_appear_after_restart(server_factory, uniq, loop_factory):
    _once(loop_factory)
    srv = server_factory()
    q = emsfast.Queue(uniq("q"))
    async with connection(srv.url) as conn:
        session = conn.session(transacted=True)
        producer = session.producer(q)
        for i in range(3):
            await producer.send(emsfast.TextMessage(f"open{i}"))
        await conn.ping()       # the server holds them, uncommitted
        with restarted(srv) as again:
            async with connection(again.url) as after:
                session2 = after.session()
                await session2.producer(q).send(emsfast.TextMessage("marker"))
                got = await receive_until(session2.consumer(q), "marker", timeout=10)
                assert [text_of(m) for m in got] == ["marker"]


@pytest.mark.skipif(not HAS_PERSISTENT_STORE,
                    reason="needs a persistent store (emsfast.store.lmdb_store): the "
                           "in-memory store loses committed messages on restart too")
async def test_committed_work_survives_and_open_work_rolls_back(server_factory, uniq,
                                                                 loop_factory):
    _once(loop_factory)
    srv = server_factory()
    q, src = emsfast.Queue(uniq("q")), emsfast.Queue(uniq("src"))
    async with connection(srv.url) as conn:
        await conn.session().producer(src).send(emsfast.TextMessage("to consume"))
        session = conn.session(transacted=True)
        producer = session.producer(q)
        await producer.send(emsfast.TextMessage("committed"))
        await session.commit()
        await producer.send(emsfast.TextMessage("open"))
        # Consumed inside the open transaction: its ack must not survive either.
        (taken,) = await receive_n(session.consumer(src), 1, timeout=10)
        assert text_of(taken) == "to consume"
        await conn.ping()
        with restarted(srv) as again:
            async with connection(again.url) as after:
                s2 = after.session()
                await s2.producer(q).send(emsfast.TextMessage("marker"))
                got = await receive_until(s2.consumer(q), "marker", timeout=10)
                assert [text_of(m) for m in got] == ["committed", "marker"]
                (back,) = await receive_n(s2.consumer(src), 1, timeout=10)
                assert text_of(back) == "to consume"
