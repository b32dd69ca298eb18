"""The client connection driven frame by frame through a fake transport (no sockets).

Each test plays the server: it decodes what the client wrote and feeds back the
frames a server would send.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import emsfast
from emsfast._core.framing import (
    FrameDecoder,
    FrameEncoder,
    parse_ack,
    parse_credit,
    parse_publish,
    unpack_control,
)
from emsfast._core.message import decode_message
from emsfast.client.connection import Connection
from emsfast.consts import (
    FRAME_ACK,
    FRAME_CREDIT,
    FRAME_ERROR,
    FRAME_HELLO,
    FRAME_PUBLISH,
    FRAME_REFUSED,
    FRAME_REPLY,
    FRAME_REQUEST,
    FRAME_WELCOME,
    PUBLISH_CONFIRM,
)
from emsfast.errors import (
    ConnectionClosedError,
    ErrorCode,
    LimitError,
    NotAllowedError,
    ProtocolError,
    StandbyError,
)
from emsfast.link.protocol import ClientProtocol
from emsfast.link.urls import ServerUrl


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


class FakeServer:
    """Decodes client frames and feeds server frames into the protocol."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.transport = FakeTransport()
        self.proto = ClientProtocol(loop, {"magic": "EMSF", "proto": 1, "user": None})
        self.proto.connection_made(self.transport)
        self.decoder = FrameDecoder(1 << 30)
        self.enc = FrameEncoder()

    def frames(self) -> list[tuple[int, int, bytes]]:
        data = b"".join(self.transport.writes)
        self.transport.writes.clear()
        return self.decoder.feed(data)

    def send(self) -> None:
        self.proto.data_received(self.enc.take())

    def reply(self, rid: int, **fields: Any) -> None:
        self.enc.control(FRAME_REPLY, {"rid": rid, **fields})
        self.send()

    def requests(self) -> list[dict[str, Any]]:
        out = []
        for ftype, _, body in self.frames():
            assert ftype == FRAME_REQUEST
            out.append(unpack_control(body))
        return out


async def turn() -> None:
    """Let the loop run the per-turn flush."""
    for _ in range(3):
        await asyncio.sleep(0)


async def connected(**welcome: Any) -> tuple[FakeServer, Connection]:
    server = FakeServer()
    await turn()
    (hello,) = server.frames()
    assert hello[0] == FRAME_HELLO
    server.enc.control(FRAME_WELCOME, {"proto": 1, "server": "SRV", "conn_id": 9,
                                       "max_msg_size": 1 << 20, **welcome})
    server.send()
    info = await server.proto.welcome
    return server, Connection(server.proto, ServerUrl("tcp", "h", 7222), info, None)


async def test_hello_then_welcome():
    server = FakeServer()
    await turn()
    ((ftype, flags, body),) = server.frames()
    assert (ftype, flags) == (FRAME_HELLO, 0)
    assert unpack_control(body)["magic"] == "EMSF"
    server.enc.control(FRAME_WELCOME, {"proto": 1, "server": "S", "conn_id": 3,
                                       "max_msg_size": 0})
    server.send()
    info = await server.proto.welcome
    assert info["max_msg_size"] == 512 * 1024 * 1024  # 0 means EMS's ceiling


async def test_refused_standby_is_standby_error():
    server = FakeServer()
    server.enc.control(FRAME_REFUSED, {"code": int(ErrorCode.STANDBY), "text": "standby"})
    server.send()
    with pytest.raises(StandbyError, match="standby"):
        await server.proto.welcome
    assert server.transport.closed


async def test_creates_are_pipelined_in_one_write():
    server, conn = await connected()
    session = conn.session(ack_mode="client")
    session.producer(emsfast.Queue("orders"))
    session.consumer(emsfast.Topic("prices.>"), nolocal=True)
    await turn()
    assert len(server.transport.writes) == 1
    reqs = server.requests()
    assert [r["op"] for r in reqs] == ["session.create", "producer.create", "consumer.create"]
    assert len({r["rid"] for r in reqs}) == 3
    assert reqs[0]["ack_mode"] == 2
    assert (reqs[1]["dest_type"], reqs[1]["dest"]) == ("queue", "orders")
    assert (reqs[2]["dest_type"], reqs[2]["dest"], reqs[2]["nolocal"]) == (
        "topic", "prices.>", True)
    assert "selector" not in reqs[2] and "durable" not in reqs[2]


async def test_creation_error_raised_at_first_use_with_server_text():
    server, conn = await connected()
    session = conn.session()
    producer = session.producer(emsfast.Queue("nope"))
    await turn()
    s_req, p_req = server.requests()
    server.reply(s_req["rid"])
    server.enc.control(FRAME_ERROR, {"rid": p_req["rid"], "code": int(ErrorCode.NOT_ALLOWED),
                                     "text": "queue 'nope' is not allowed"})
    server.send()
    with pytest.raises(NotAllowedError, match="queue 'nope' is not allowed"):
        await producer.send(emsfast.TextMessage("x"))


async def ready_producer(server: FakeServer, conn: Connection, **kw: Any) -> Any:
    producer = conn.session().producer(emsfast.Queue("q"), **kw)
    await turn()
    for req in server.requests():
        server.reply(req["rid"])
    return producer


async def test_persistent_send_waits_for_confirm():
    server, conn = await connected()
    producer = await ready_producer(server, conn)
    msg = emsfast.TextMessage("hi", properties={"k": 1})
    task = asyncio.ensure_future(producer.send(msg, priority=7, ttl=1000))
    await turn()
    ((ftype, flags, body),) = server.frames()
    assert ftype == FRAME_PUBLISH and flags == PUBLISH_CONFIRM
    pid, seq, blob = parse_publish(body)
    assert (pid, seq) == (producer.id, 1)
    body_type, mode, prio, ts, exp, headers, props, raw = decode_message(blob)
    assert (mode, prio, exp - ts) == (2, 7, 1000)
    assert headers == {"dest": "q:q"}
    assert props == {"k": 1} and raw == b"hi"
    assert not task.done()
    server.enc.confirm(pid, [(seq, 42)])
    server.send()
    await task
    assert msg.message_id == "ID:SRV.42"


async def test_send_async_window_and_flush():
    server, conn = await connected()
    producer = await ready_producer(server, conn, window=2)
    f1 = await producer.send_async(emsfast.TextMessage("1"))
    f2 = await producer.send_async(emsfast.TextMessage("2"))
    third = asyncio.ensure_future(producer.send_async(emsfast.TextMessage("3")))
    await turn()
    assert not third.done()  # two unconfirmed: the window is full
    seqs = [parse_publish(body)[1] for _, _, body in server.frames()]
    assert seqs == [1, 2]
    server.enc.confirm(producer.id, [(1, 10)])
    server.send()
    f3 = await third
    assert (await f1).message_id == "ID:SRV.10"
    flush = asyncio.ensure_future(producer.flush())
    await turn()
    server.frames()
    server.enc.confirm(producer.id, [(2, 11), (3, 12)])
    server.send()
    await turn()
    (ping,) = server.requests()
    assert ping["op"] == "ping"
    server.reply(ping["rid"])
    await flush
    assert f2.result().message_id == "ID:SRV.11"
    assert f3.result().message_id == "ID:SRV.12"


async def test_non_persistent_failure_raised_by_flush_once():
    server, conn = await connected()
    producer = await ready_producer(server, conn)
    for _ in range(3):
        await producer.send(emsfast.TextMessage("x"), delivery_mode="non_persistent")
    await turn()
    assert all(flags == 0 for _, flags, _ in server.frames())
    for seq in (1, 2):
        server.enc.send_fail(producer.id, seq, int(ErrorCode.LIMIT), "queue full")
    server.send()
    flush = asyncio.ensure_future(producer.flush())
    await turn()
    (ping,) = server.requests()
    server.reply(ping["rid"])
    with pytest.raises(LimitError, match="queue full"):
        await flush
    flush = asyncio.ensure_future(producer.flush())  # both failures were one report
    await turn()
    (ping,) = server.requests()
    server.reply(ping["rid"])
    await flush


async def test_async_failure_seen_by_the_app_is_not_raised_again():
    server, conn = await connected()
    producer = await ready_producer(server, conn)
    fut = await producer.send_async(emsfast.TextMessage("x"))
    server.enc.send_fail(producer.id, 1, int(ErrorCode.LIMIT), "full")
    server.send()
    with pytest.raises(LimitError):
        await fut
    await producer.send(emsfast.TextMessage("y"), delivery_mode="reliable")


async def test_message_over_max_msg_size_fails_locally():
    server, conn = await connected(max_msg_size=100)
    producer = await ready_producer(server, conn)
    with pytest.raises(LimitError, match="max_msg_size"):
        await producer.send(emsfast.BytesMessage(b"x" * 200))


def deliver(server: FakeServer, cid: int, tags: range, count: int = 1) -> None:
    for tag in tags:
        blob = emsfast.TextMessage(f"m{tag}").encode(2, 4, 0, 0, emsfast.Topic("a.b"))
        server.enc.deliver(cid, count, tag, 100 + tag, blob)
    server.send()


async def ready_consumer(server: FakeServer, conn: Connection, ack_mode: str,
                         prefetch: int) -> Any:
    session = conn.session(ack_mode=ack_mode)
    consumer = session.consumer(emsfast.Topic("a.>"))
    await turn()
    s_req, c_req = server.requests()
    server.reply(s_req["rid"])
    server.reply(c_req["rid"], prefetch=prefetch)
    return session, consumer


def acks_and_credits(server: FakeServer) -> tuple[list[int], int]:
    tags: list[int] = []
    credit = 0
    for ftype, _, body in server.frames():
        if ftype == FRAME_ACK:
            tags += parse_ack(body)[1]
        elif ftype == FRAME_CREDIT:
            credit += parse_credit(body)[1]
    return tags, credit


async def test_auto_ack_and_credit_batches():
    server, conn = await connected()
    _, consumer = await ready_consumer(server, conn, "auto", prefetch=4)
    deliver(server, consumer.id, range(1, 5))
    msg = await consumer.receive()
    assert msg.text == "m1" and msg.message_id == "ID:SRV.101"
    assert msg.destination == emsfast.Topic("a.b")  # the real topic, not the wildcard
    await turn()
    assert acks_and_credits(server) == ([1], 0)  # credit waits for half the prefetch
    await consumer.receive()  # credit 2 reaches the batch: sent at the turn's end
    await consumer.receive()
    await turn()
    assert acks_and_credits(server) == ([2, 3], 3)
    await consumer.receive()  # the buffer is empty now: credit goes at once
    await turn()
    assert acks_and_credits(server) == ([4], 1)
    assert await consumer.receive(timeout=0) is None


async def test_client_ack_acks_everything_taken():
    server, conn = await connected()
    _, consumer = await ready_consumer(server, conn, "client", prefetch=10)
    deliver(server, consumer.id, range(1, 4))
    await consumer.receive()
    second = await consumer.receive()
    await turn()
    assert acks_and_credits(server)[0] == []
    await second.acknowledge()
    await turn()
    assert acks_and_credits(server)[0] == [1, 2]


async def test_explicit_ack_acks_one():
    server, conn = await connected()
    _, consumer = await ready_consumer(server, conn, "explicit", prefetch=10)
    deliver(server, consumer.id, range(1, 4))
    msgs = [await consumer.receive() for _ in range(3)]
    msgs[1].acknowledge()
    await turn()
    assert acks_and_credits(server)[0] == [2]


async def test_none_never_acks():
    server, conn = await connected()
    _, consumer = await ready_consumer(server, conn, "none", prefetch=10)
    deliver(server, consumer.id, range(1, 3))
    (await consumer.receive()).acknowledge()
    await consumer.receive()
    await turn()
    assert acks_and_credits(server)[0] == []


async def test_acks_precede_commit_request():
    server, conn = await connected()
    session = conn.session(transacted=True)
    consumer = session.consumer(emsfast.Queue("q"))
    await turn()
    for i, req in enumerate(server.requests()):
        server.reply(req["rid"], **({"prefetch": 5} if i else {}))
    deliver(server, consumer.id, range(7, 8), count=2)
    msg = await consumer.receive()
    assert msg.redelivered and msg.delivery_count == 2
    commit = asyncio.ensure_future(session.commit())
    await turn()
    frames = server.frames()
    # The taken message's ACK (and its CREDIT) go out before the commit request.
    assert [f[0] for f in frames] == [FRAME_CREDIT, FRAME_ACK, FRAME_REQUEST]
    assert parse_ack(frames[1][2])[1] == [7]
    assert unpack_control(frames[-1][2])["op"] == "session.commit"
    server.reply(unpack_control(frames[-1][2])["rid"])
    await commit


async def test_receive_timeout_returns_none():
    server, conn = await connected()
    _, consumer = await ready_consumer(server, conn, "auto", prefetch=5)
    assert await consumer.receive(timeout=0.01) is None
    waiting = asyncio.ensure_future(consumer.receive(timeout=5))
    await turn()
    deliver(server, consumer.id, range(1, 2))
    assert (await waiting).text == "m1"


async def test_connection_error_fails_everything_pending():
    server, conn = await connected()
    _, consumer = await ready_consumer(server, conn, "auto", prefetch=5)
    waiting = asyncio.ensure_future(consumer.receive())
    ping = asyncio.ensure_future(conn.ping())
    await turn()
    server.enc.control(FRAME_ERROR, {"rid": None, "code": int(ErrorCode.PROTOCOL),
                                     "text": "bad frame"})
    server.send()
    with pytest.raises(ProtocolError, match="bad frame"):
        await ping
    with pytest.raises(ProtocolError):
        await waiting
    assert server.transport.closed
    with pytest.raises(ConnectionClosedError, match="bad frame"):
        await consumer.receive()
    with pytest.raises(ConnectionClosedError):
        conn.session()
    await conn.close()  # idempotent after a failure


async def test_connection_lost_raises_connection_closed():
    server, conn = await connected()
    _, consumer = await ready_consumer(server, conn, "auto", prefetch=5)
    producer = await ready_producer(server, conn)
    pending = await producer.send_async(emsfast.TextMessage("x"))
    waiting = asyncio.ensure_future(consumer.receive())
    await turn()
    server.proto.connection_lost(None)
    with pytest.raises(ConnectionClosedError):
        await waiting
    with pytest.raises(ConnectionClosedError):
        await pending
    with pytest.raises(ConnectionClosedError):
        await producer.send(emsfast.TextMessage("y"))


async def test_close_pings_then_closes_and_is_idempotent():
    server, conn = await connected()
    closing = asyncio.ensure_future(conn.close())
    await turn()
    (ping,) = server.requests()
    server.reply(ping["rid"])
    await closing
    assert server.transport.closed and conn.is_closed
    await conn.close()
    with pytest.raises(ConnectionClosedError):
        conn.session()
