"""Temporary destinations and request/reply through a real daemon (EMS.md 5.9)."""

from __future__ import annotations

import asyncio

import pytest

import emsfast
from emsfast._testbase.clientutil import connection, receive_n, text_of
from emsfast.errors import InUseError, NotAllowedError, NotFoundError

pytestmark = pytest.mark.timeout(60)


async def test_temporary_queue_round_trip_and_naming(server):
    async with connection(server.url) as conn:
        session = conn.session()
        tq = session.temporary_queue()
        assert tq.name.startswith(f"$TMP$.{conn.server_name}.{conn.conn_id}.")
        assert tq == emsfast.Queue(tq.name) and emsfast.Queue(tq.name) == tq
        assert {emsfast.Queue(tq.name): 1}.get(tq) == 1    # usable as the same dict key
        await session.producer(tq).send(emsfast.TextMessage("hi"))
        (got,) = await receive_n(session.consumer(tq), 1, timeout=10)
        assert text_of(got) == "hi"


async def test_only_the_creating_connection_consumes(server):
    async with connection(server.url) as owner, connection(server.url) as other:
        tq = owner.temporary_queue()
        tt = owner.temporary_topic()
        await tq.ready
        await tt.ready
        # Another connection may send to it...
        await other.session().producer(tq).send(emsfast.TextMessage("from other"))
        # ...but not consume from it.
        for dest in (tq, tt):
            with pytest.raises(NotAllowedError, match="another connection"):
                await other.session().consumer(dest).receive(timeout=1)
        (got,) = await receive_n(owner.session().consumer(tq), 1, timeout=10)
        assert text_of(got) == "from other"


async def test_deleted_with_its_connection(server):
    async with connection(server.url) as other:
        async with connection(server.url) as owner:
            tq = owner.temporary_queue()
            await tq.ready
        # The owner closed: producing to its temporary queue is refused.
        with pytest.raises(NotFoundError, match="does not exist|was deleted"):
            await other.session().producer(emsfast.Queue(tq.name)).send(emsfast.TextMessage("x"))


async def test_deleted_when_the_connection_breaks(server):
    async with connection(server.url) as other:
        owner = await emsfast.connect(server.url)
        tq = owner.temporary_queue()
        await tq.ready
        owner.proto.abort(emsfast.errors.ConnectionClosedError("cut"))  # no goodbye

        async def gone() -> bool:
            try:
                await other.session().producer(emsfast.Queue(tq.name)).send(
                    emsfast.TextMessage("x"))
            except NotFoundError:
                return True
            return False

        from emsfast._testbase.clientutil import eventually
        assert await eventually(gone, timeout=10)


async def test_delete_refuses_while_consumed_then_works(server):
    async with connection(server.url) as conn:
        session = conn.session()
        tt = session.temporary_topic()
        consumer = session.consumer(tt)
        await consumer.ready
        with pytest.raises(InUseError):
            await tt.delete()
        await consumer.close()
        await tt.delete()
        with pytest.raises(NotFoundError):
            await session.producer(tt).send(emsfast.TextMessage("late"))


async def test_request_reply(server, uniq):
    service = emsfast.Queue(uniq("svc"))
    async with connection(server.url) as srv_conn, connection(server.url) as cli_conn:
        srv_session = srv_conn.session()
        requests = srv_session.consumer(service)
        await requests.ready

        async def serve(n: int) -> None:
            for _ in range(n):
                req = await requests.receive(timeout=10)
                assert req is not None and req.reply_to is not None
                await srv_session.reply(req, emsfast.TextMessage(text_of(req).upper()))

        server_task = asyncio.ensure_future(serve(3))
        session = cli_conn.session()
        reply = await session.request(service, emsfast.TextMessage("one"), timeout=10)
        assert reply is not None and text_of(reply) == "ONE"
        async with session.requestor(service) as requestor:
            for word in ("two", "three"):
                msg = emsfast.TextMessage(word)
                reply = await requestor.request(msg, timeout=10)
                assert reply is not None and text_of(reply) == word.upper()
                assert reply.correlation_id == msg.correlation_id
                assert reply.destination == requestor.reply_to
        await server_task


async def test_request_times_out_without_a_responder(server, uniq):
    async with connection(server.url) as conn:
        reply = await conn.session().request(emsfast.Queue(uniq("nobody")),
                                             emsfast.TextMessage("?"), timeout=0.3)
        assert reply is None


def test_blocking_facade_jms_additions(server, uniq):
    q, t = emsfast.Queue(uniq("q")), emsfast.Topic(uniq("t"))
    with emsfast.blocking.connect(server.url) as conn:
        session = conn.session()
        session.producer(q).send(emsfast.TextMessage("browse me"))
        assert [text_of(m) for m in session.browse(q)] == ["browse me"]
        tq = session.temporary_queue()
        session.producer(tq).send(emsfast.TextMessage("tmp"))
        consumer = session.consumer(tq)
        assert text_of(consumer.receive(timeout=10)) == "tmp"
        consumer.close()
        session.delete_temporary(tq)
        shared = session.shared_consumer(t, "s")
        session.producer(t).send(emsfast.TextMessage("shared"))
        assert text_of(shared.receive(timeout=10)) == "shared"
        assert session.request(q, emsfast.TextMessage("?"), timeout=0.2) is None
