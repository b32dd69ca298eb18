"""Bad input (issue 3, "Bad input"): each gets a clear error, the daemon keeps serving
every other connection, and nothing already accepted is lost. The configurable limits
(max_connections, max_preauth_bytes, ...) are hit in test_limits.py.

Wire attacks use ``rawwire`` (plain sockets, written from docs/protocol.md) while a
bystander connection, opened before the attack, keeps working through it.
"""

from __future__ import annotations

import asyncio
import random
import struct

import msgpack
import pytest

import emsfast
from emsfast import consts, errors
from emsfast._testbase.clientutil import connection, receive_n, text_of
from emsfast._testbase.rawwire import (
    RawConnection,
    error_texts,
    frame,
    publish,
    text_blob,
)
from emsfast._testbase.rawwire import (
    control as rawwire_control,
)

pytestmark = pytest.mark.timeout(60)

MAX_MSG_SIZE = 64 * 1024


@pytest.fixture(scope="module")
def server(module_server_factory):
    return module_server_factory(max_msg_size="64KB")


def T(text):
    return emsfast.TextMessage(text)


async def survives(server, queue_name, attack):
    """Run ``attack()`` (blocking, in a thread) between two persistent sends of a
    bystander connection; then a fresh client must find both messages, in order.
    Returns what the attack returned."""
    q = emsfast.Queue(queue_name)
    async with connection(server.url) as bystander:
        producer = bystander.session().producer(q)
        await producer.send(T("before"), delivery_mode="persistent")
        result = await asyncio.to_thread(attack)
        await producer.send(T("after"), delivery_mode="persistent")
    async with connection(server.url) as fresh:
        got = await receive_n(fresh.session().consumer(q), 2)
        assert [text_of(m) for m in got] == ["before", "after"]
    assert server.is_running()
    return result


def raw(server):
    return RawConnection("127.0.0.1", server.port, timeout=10)


def attack_and_collect(server, payload, *, login=False):
    """Send ``payload``; return the error texts the server sent before it closed."""
    with raw(server) as conn:
        if login:
            conn.login()
        conn.send_tolerant(payload)
        return error_texts(conn.read_until_closed(timeout=10))


async def test_garbage_byte_stream(server, uniq):
    garbage = random.Random(3).randbytes(1024)
    texts = await survives(server, uniq("bad"), lambda: attack_and_collect(server, garbage))
    assert texts and all(t.strip() for t in texts), texts


async def test_garbage_after_login(server, uniq):
    garbage = random.Random(4).randbytes(1024)
    texts = await survives(
        server, uniq("bad"), lambda: attack_and_collect(server, garbage, login=True)
    )
    assert texts and all(t.strip() for t in texts), texts


@pytest.mark.parametrize("login", [False, True], ids=["before_login", "after_login"])
async def test_frame_claiming_4_gib(server, uniq, login):
    rss_before = server.rss_kib()
    ftype = consts.FRAME_PUBLISH if login else consts.FRAME_HELLO
    header = frame(ftype, b"", size=0xFFFFFFFF)
    texts = await survives(
        server, uniq("bad"), lambda: attack_and_collect(server, header, login=login)
    )
    assert any("4294967295" in t for t in texts), texts
    # Refused before allocating: the daemon did not grow by anything like 4 GiB.
    assert server.rss_kib() - rss_before < 64 * 1024


async def test_unknown_frame_type(server, uniq):
    texts = await survives(
        server,
        uniq("bad"),
        lambda: attack_and_collect(server, frame(0x7F, b"\x00" * 4), login=True),
    )
    assert any("unknown" in t.lower() and "0x7f" in t.lower() for t in texts), texts


async def test_first_frame_not_hello(server, uniq):
    ping = frame(consts.FRAME_REQUEST, b"\x80")  # a REQUEST (empty map) before HELLO
    texts = await survives(server, uniq("bad"), lambda: attack_and_collect(server, ping))
    assert texts, "server closed without saying why"


def test_unsupported_protocol_version_is_refused(server):
    with raw(server) as conn:
        conn.send(rawwire_control(consts.FRAME_HELLO, {"magic": consts.HELLO_MAGIC, "proto": 99}))
        frames = conn.read_until_closed(timeout=10)
    refused = [msgpack.unpackb(b) for t, _, b in frames if t == consts.FRAME_REFUSED]
    assert refused, frames
    assert refused[0]["code"] in ("VERSION", errors.ErrorCode.VERSION), refused
    assert "99" in str(refused[0].get("text")), refused


async def test_truncated_frame_then_close(server, uniq):
    name = uniq("bad")

    def attack():
        with raw(server) as conn:
            conn.login()
            conn.request("session.create", session=1, ack_mode=consts.ACK_AUTO)
            conn.request("producer.create", session=1, producer=1, dest_type="queue", dest=name)
            whole = publish(1, 1, text_blob("half", f"q:{name}"))
            conn.send(whole[: len(whole) // 2])
        # Closed mid-frame: the half message must not reach the queue.

    await survives(server, name, attack)
    # A marker proves nothing else (no "half") is queued behind the two messages.
    async with connection(server.url) as conn:
        session = conn.session()
        await session.producer(emsfast.Queue(name)).send(T("__marker__"))
        got = await receive_n(session.consumer(emsfast.Queue(name)), 1)
        assert text_of(got[0]) == "__marker__"


async def test_raw_publish_round_trip(server, uniq):
    """Control for the raw attacks: a well-formed raw PUBLISH is confirmed and stored,
    so rawwire speaks the protocol the daemon serves."""
    name = uniq("raw")

    def publish_one():
        with raw(server) as conn:
            conn.login()
            conn.request("session.create", session=1, ack_mode=consts.ACK_AUTO)
            conn.request("producer.create", session=1, producer=1, dest_type="queue", dest=name)
            conn.send(publish(1, 1, text_blob("raw hello", f"q:{name}")))
            while (f := conn.read_frame()) is not None:
                if f[0] == consts.FRAME_CONFIRM:
                    producer, n = struct.unpack_from("<II", f[2])
                    seq, _message_id = struct.unpack_from("<QQ", f[2], 8)
                    return producer, n, seq
            raise AssertionError("connection closed before CONFIRM")

    assert await asyncio.to_thread(publish_one) == (1, 1, 1)
    async with connection(server.url) as conn:
        got = await receive_n(conn.session().consumer(emsfast.Queue(name)), 1)
        assert text_of(got[0]) == "raw hello"


async def test_message_over_max_msg_size_client(server, uniq):
    name = uniq("bad")
    q = emsfast.Queue(name)
    async with connection(server.url) as conn:
        producer = conn.session().producer(q)
        await producer.send(T("before"), delivery_mode="persistent")
        with pytest.raises(errors.LimitError) as info:
            await producer.send(T("x" * (MAX_MSG_SIZE + 1024)), delivery_mode="persistent")
        text = str(info.value)
        assert "max_msg_size" in text or str(MAX_MSG_SIZE) in text, text
    async with connection(server.url) as conn:
        session = conn.session()
        await session.producer(q).send(T("after"))
        got = await receive_n(session.consumer(q), 2)
        assert [text_of(m) for m in got] == ["before", "after"]


async def test_message_over_max_msg_size_raw(server, uniq):
    """The server checks the size itself, whatever a client checked before sending."""
    name = uniq("bad")

    def attack():
        with raw(server) as conn:
            conn.login()
            conn.request("session.create", session=1, ack_mode=consts.ACK_AUTO)
            conn.request("producer.create", session=1, producer=1, dest_type="queue", dest=name)
            conn.send_tolerant(publish(1, 1, text_blob("x" * (MAX_MSG_SIZE + 1024), f"q:{name}")))
            while (f := conn.read_frame()) is not None:
                if f[0] == consts.FRAME_SEND_FAIL:
                    _producer, seq, code = struct.unpack_from("<IQH", f[2])
                    return [f"{code}: {f[2][14:].decode()}"]
                if f[0] in (consts.FRAME_ERROR, consts.FRAME_REFUSED):
                    return error_texts([f])
                if f[0] == consts.FRAME_CONFIRM:
                    raise AssertionError("server confirmed a message over max_msg_size")
            raise AssertionError("server closed the connection without an error")

    texts = await survives(server, name, attack)
    assert any("max_msg_size" in t or str(MAX_MSG_SIZE) in t for t in texts), texts


async def test_selector_that_does_not_parse(server, uniq):
    q = emsfast.Queue(uniq("bad"))
    async with connection(server.url) as conn:
        session = conn.session()
        with pytest.raises(errors.SelectorError) as info:
            consumer = session.consumer(q, selector="price >< 5")
            await consumer.receive(timeout=5)
        assert "><" in str(info.value) or "price >< 5" in str(info.value), str(info.value)
        # The connection and session are still usable.
        await session.producer(q).send(T("fine"))
        got = await receive_n(session.consumer(q, selector="price IS NULL"), 1)
        assert text_of(got[0]) == "fine"


def test_selector_that_does_not_parse_raw(server, uniq):
    """The server rejects a bad selector itself, answering that request only."""
    name = uniq("bad")
    with raw(server) as conn:
        conn.login()
        conn.request("session.create", session=1, ack_mode=consts.ACK_AUTO)
        with pytest.raises(RuntimeError) as info:
            conn.request(
                "consumer.create",
                session=1,
                consumer=1,
                dest_type="queue",
                dest=name,
                selector="price >< 5",
            )
        code, text = info.value.args
        assert code in (errors.ErrorCode.INVALID, "INVALID"), info.value.args
        assert "><" in text or "price >< 5" in text, text
        conn.request("ping")  # the connection lives on


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_line",
    ["this line has no equals sign", "max_connections = lots", "max_msg_size = huge"],
)
def test_tibemsd_conf_line_that_does_not_parse(server_factory, bad_line):
    srv = server_factory(start=False)
    path = srv.write_config()
    lines = path.read_text().splitlines()
    lines.insert(2, bad_line)
    path.write_text("\n".join(lines) + "\n")
    srv.start(wait_ready=False, write_config=False)
    rc = srv.wait(20)
    err = srv.log_text()
    assert rc == 1, err
    assert "tibemsd.conf:3" in err, err
    assert "Server is active." not in err


def test_queues_conf_line_that_does_not_parse(server_factory):
    srv = server_factory(start=False, queues=">\nfoo.bar  maxmsgs=many\n")
    srv.start(wait_ready=False)
    rc = srv.wait(20)
    err = srv.log_text()
    assert rc == 1, err
    assert "queues.conf:2" in err, err
