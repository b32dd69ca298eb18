"""Limits against abuse (docs/operations.md, "Limits against abuse"): each is hit on a
real daemon, and each time (a) the offending client gets an error naming the limit and
its value, or is closed, (b) the daemon logs a line naming the limit and the client,
(c) the daemon stays up and another client keeps producing and consuming meanwhile.

Limits are small here so the tests run fast. Covered elsewhere: map nesting depth in
test_jms_messages.py (test_too_deep_is_refused_by_client_and_server), garbage and
4 GiB frames in test_bad_input.py, STOMP max_connections and handshake_timeout in
test_stomp.py.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time

import msgpack
import pytest

import emsfast
from emsfast import consts, errors
from emsfast._testbase.clientutil import connection, eventually, receive_n, text_of
from emsfast._testbase.rawwire import (
    RawConnection,
    control,
    error_texts,
    frame,
    hello,
    publish,
    text_blob,
)

pytestmark = pytest.mark.timeout(90)

MAX_MSG_SIZE = 64 * 1024
PREAUTH = 2048
SELECTOR = 64
PENDING = 1024 * 1024
FLOOD_BODY = 8 * 1024
# Far more than the cap plus what the kernel buffers on both ends of a loopback link
# (the raw client shrinks its receive buffer, so mostly the server's 4 MB send buffer).
FLOOD_COUNT = 1500


@pytest.fixture(scope="module")
def server(module_server_factory):
    # flood.* holders hand a consumer everything at once (prefetch far above any backlog).
    return module_server_factory(
        max_msg_size="64KB",
        queues=">\nflood.> prefetch=1000000\n",
        topics=">\nflood.> prefetch=1000000\n",
        params={
            "max_preauth_bytes": f"{PREAUTH}",
            "handshake_timeout": "1",
            "max_selector_length": f"{SELECTOR}",
            "max_client_pending_bytes": "1MB",
            "stomp_listen": "tcp://127.0.0.1:0",
        },
    )


def raw(server, timeout=10.0):
    return RawConnection("127.0.0.1", server.port, timeout=timeout)


class Bystander:
    """A client connected before the attack, which must keep working through it."""

    def __init__(self, conn, queue):
        self.session = conn.session()
        self.producer = self.session.producer(queue)
        self.consumer = self.session.consumer(queue)
        self.n = 0

    async def round_trip(self):
        self.n += 1
        text = f"bystander {self.n}"
        await self.producer.send(emsfast.TextMessage(text))
        (got,) = await receive_n(self.consumer, 1, timeout=10)
        assert text_of(got) == text


async def attacked(server, uniq, attack):
    """Run ``attack()`` in a thread while a bystander round-trips before, during and
    after it; return what the attack returned."""
    async with connection(server.url) as conn:
        bystander = Bystander(conn, emsfast.Queue(uniq("bystander")))
        await bystander.round_trip()
        task = asyncio.ensure_future(asyncio.to_thread(attack))
        while not task.done():
            await bystander.round_trip()
            await asyncio.sleep(0.05)
        result = await task
        await bystander.round_trip()
    assert server.is_running()
    return result


def refusal(frames):
    """(code, text) of the REFUSED frame among ``frames``."""
    for ftype, _, body in frames:
        if ftype == consts.FRAME_REFUSED:
            info = msgpack.unpackb(body)
            return info["code"], info["text"]
    raise AssertionError(f"no REFUSED frame in {frames!r}")


def read_all(conn, timeout=20.0):
    """Frames until the server closes; a reset ends the stream like a close."""
    frames = []
    try:
        while (f := conn.read_frame(timeout)) is not None:
            frames.append(f)
    except ConnectionResetError:
        pass
    return frames


# -- max_connections ------------------------------------------------------------------


async def test_max_connections(server_factory, uniq):
    srv = server_factory(max_connections=2)
    q = emsfast.Queue(uniq("q"))
    async with connection(srv.url) as c1, connection(srv.url) as c2:
        with pytest.raises(errors.LimitError, match=r"max_connections \(2\) reached"):
            extra = await emsfast.connect(srv.url)
            await extra.close()
        srv.wait_for_line("connect failed: max_connections (2) reached", 10)
        # The two admitted connections keep working.
        await c1.session().producer(q).send(emsfast.TextMessage("still here"))
        got = await receive_n(c2.session().consumer(q), 1)
        assert text_of(got[0]) == "still here"
        await c1.close()

        # A slot is free again once the server has seen c1 go.
        async def connects():
            try:
                conn = await emsfast.connect(srv.url)
            except errors.LimitError:
                return False
            await conn.close()
            return True

        await eventually(connects)


def test_max_connections_refusal_on_the_wire(server_factory):
    """The refusal is on the wire too: REFUSED with code LIMIT, naming the limit."""
    srv = server_factory(max_connections=1)
    with raw(srv) as first:
        first.login()
        with raw(srv) as second:
            second.send_tolerant(hello())
            code, text = refusal(read_all(second))
        first.request("ping")
    assert code in ("LIMIT", errors.ErrorCode.LIMIT)
    assert "max_connections (1)" in text


# -- max_preauth_bytes and handshake_timeout --------------------------------------------


@pytest.mark.parametrize(
    "payload, logged",
    [
        # Heart-beats are legal before HELLO; 600 of them are 4800 bytes.
        (frame(consts.FRAME_HEARTBEAT) * 600, "4800 bytes sent before login exceed"),
        # One header claiming a HELLO bigger than the whole budget.
        (frame(consts.FRAME_HELLO, b"", size=PREAUTH + 1),
         f"frame of {PREAUTH + 1} bytes sent before login exceeds"),
    ],
    ids=["many_small_frames", "one_big_frame"],
)
async def test_max_preauth_bytes(server, uniq, payload, logged):
    def attack():
        with raw(server) as conn:
            conn.send_tolerant(payload)
            return refusal(read_all(conn))

    code, text = await attacked(server, uniq, attack)
    assert code in ("LIMIT", errors.ErrorCode.LIMIT)
    assert f"max_preauth_bytes ({PREAUTH})" in text, text
    line = server.wait_for_line(logged, 10)
    assert f"[127.0.0.1]: connect failed: {logged} max_preauth_bytes ({PREAUTH})" in line


@pytest.mark.parametrize("sent", [b"", hello()[:20]], ids=["silent", "half_a_hello"])
async def test_handshake_timeout(server, uniq, sent):
    def attack():
        with raw(server) as conn:
            conn.send(sent)
            return refusal(read_all(conn))

    _code, text = await attacked(server, uniq, attack)
    assert "handshake_timeout (1 s)" in text, text
    server.wait_for_line("connect failed: no login within handshake_timeout (1 s)", 10)


def test_stomp_max_preauth_bytes(server):
    port = stomp_port(server)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # EOLs are STOMP heart-beats, legal between frames and before CONNECT.
        try:
            sock.sendall(b"\n" * (PREAUTH + 100))
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = recv_until_closed(sock)
    assert reply.startswith(b"ERROR\n"), reply
    assert f"max_preauth_bytes ({PREAUTH})".encode() in reply
    server.wait_for_line(f"{PREAUTH + 100} bytes sent before login exceed max_preauth_bytes", 10)


# -- max_msg_size -------------------------------------------------------------------------


async def test_max_msg_size(server, uniq):
    q = emsfast.Queue(uniq("q"))
    async with connection(server.url, user=uniq("big")) as conn:
        bystander = Bystander(conn, emsfast.Queue(uniq("bystander")))
        producer = conn.session().producer(q)
        # The client checks against the max_msg_size WELCOME told it.
        with pytest.raises(errors.LimitError, match=f"max_msg_size of {MAX_MSG_SIZE}"):
            await producer.send(emsfast.TextMessage("x" * (MAX_MSG_SIZE + 1024)))
        await bystander.round_trip()

    def attack():
        with raw(server) as conn:
            conn.login(user="rawbig")
            conn.request("session.create", session=1, ack_mode=consts.ACK_AUTO)
            conn.request("producer.create", session=1, producer=1, dest_type="queue",
                         dest=q.name)
            # A message over max_msg_size: refused, the connection lives on.
            conn.send(publish(1, 1, text_blob("x" * (MAX_MSG_SIZE + 1024), f"q:{q.name}")))
            while (f := conn.read_frame()) is not None and f[0] != consts.FRAME_SEND_FAIL:
                pass
            assert f is not None, "closed instead of SEND_FAIL"
            fail_text = f[2][14:].decode()
            conn.request("ping")
            # A frame beyond max_msg_size plus the framing room: the connection closes.
            conn.send_tolerant(frame(consts.FRAME_PUBLISH, b"", size=2 * MAX_MSG_SIZE + 2**17))
            return fail_text, error_texts(read_all(conn))

    fail_text, texts = await attacked(server, uniq, attack)
    assert f"exceeds max_msg_size ({MAX_MSG_SIZE})" in fail_text, fail_text
    assert any(f"max_msg_size ({MAX_MSG_SIZE})" in t for t in texts), texts
    line = server.wait_for_line("[rawbig@127.0.0.1]: message refused: ", 10)
    assert f"exceeds max_msg_size ({MAX_MSG_SIZE})" in line, line
    line = server.wait_for_line("[rawbig@127.0.0.1]: connection closed: frame of", 10)
    assert f"max_msg_size ({MAX_MSG_SIZE})" in line, line


# -- max_selector_length ------------------------------------------------------------------


async def test_max_selector_length(server, uniq):
    long = "a = 1 OR " * (SELECTOR // 9) + "a = 2"
    assert len(long) > SELECTOR
    q = emsfast.Queue(uniq("q"))
    user = uniq("sel").replace(".", "_")
    async with connection(server.url, user=user) as conn:
        bystander = Bystander(conn, emsfast.Queue(uniq("bystander")))
        session = conn.session()
        # The client learns the server's limit at login and refuses at creation.
        assert conn.max_selector_length == SELECTOR
        with pytest.raises(errors.SelectorError, match=rf"max_selector_length \({SELECTOR}\)"):
            session.consumer(q, long)
        # A client that skips the check gets the server's refusal, for that request only.
        await session.ready
        with pytest.raises(errors.InvalidError, match=rf"max_selector_length \({SELECTOR}\)"):
            await conn.request("consumer.create", {"session": session.id, "consumer": 999,
                                                   "dest_type": "queue", "dest": q.name,
                                                   "selector": long})
        await bystander.round_trip()
        # A selector within the limit works.
        await bystander.producer.send(emsfast.TextMessage("a2"))
    line = server.wait_for_line(f"[{user}@127.0.0.1]: selector refused", 10)
    assert f"{len(long)} characters exceed max_selector_length ({SELECTOR})" in line, line


# -- max_client_pending_bytes -----------------------------------------------------------


def shrink_receive_buffer(sock):
    # Otherwise the kernel would buffer megabytes for the client that does not read.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)


async def flood_in_batches(sender, topic, consumer, count, batch=50):
    """Send ``count`` numbered bodies to ``topic``, ``consumer`` taking each batch
    before the next is sent; return what it took."""
    producer = sender.session().producer(topic)
    got = []
    for start in range(0, count, batch):
        for i in range(start, start + batch):
            await producer.send_async(emsfast.TextMessage(flood_body(i)),
                                      delivery_mode="non_persistent")
        await producer.flush()
        got += await receive_n(consumer, batch, timeout=30)
    return got


def flood_body(i):
    return f"{i:06d}" + "x" * (FLOOD_BODY - 6)


async def flood(url, dest, n=FLOOD_COUNT, mode="non_persistent"):
    async with connection(url) as conn:
        producer = conn.session().producer(dest)
        for i in range(n):
            await producer.send_async(emsfast.TextMessage(flood_body(i)), delivery_mode=mode)
        await producer.flush()


def never_reads(server, user, kind, name, ack_mode=consts.ACK_CLIENT):
    """A raw consumer that subscribes and then reads nothing."""
    conn = raw(server, timeout=30)
    conn.login(user=user)
    conn.request("session.create", session=1, ack_mode=ack_mode)
    shrink_receive_buffer(conn.sock)
    conn.send(control(consts.FRAME_REQUEST, {"rid": 99, "op": "consumer.create", "session": 1,
                                             "consumer": 1, "dest_type": kind, "dest": name}))
    return conn


def closed_for_pending(conn):
    """Read what the server sent until it closed; the last ERROR names the cap."""
    frames = read_all(conn, timeout=30)
    return [t for t in error_texts(frames) if "max_client_pending_bytes" in t]


async def test_queue_consumer_that_never_reads_is_held_back(server, uniq):
    """A queue consumer with a huge prefetch that never reads gets only what its
    socket takes (flow control, no close: a queue keeps the rest); a consumer that
    reads gets the others, and the stuck one's share when it goes. Nothing lost."""
    n = 3000
    q = emsfast.Queue(uniq("flood.q"))
    await flood(server.url, q, n)
    async with connection(server.url) as other:
        bystander = Bystander(other, emsfast.Queue(uniq("bystander")))
        stuck = await asyncio.to_thread(never_reads, server, "stuckq", "queue", q.name)
        with stuck:
            await asyncio.to_thread(stuck.read_frame)   # the consumer.create REPLY
            reader = other.session().consumer(q)
            # The kernel takes a few MB for the stuck one; the rest stays for readers.
            got = await receive_n(reader, n - 1000, timeout=30)
            await bystander.round_trip()
        got += await receive_n(reader, 1000, timeout=30)
        assert sorted(text_of(m)[:6] for m in got) == [f"{i:06d}" for i in range(n)]
        await bystander.round_trip()


async def test_pending_cap_topic_subscriber_that_never_reads(server, uniq):
    """A topic subscriber that never reads while a producer floods is closed once its
    backlog passes the cap; a subscriber that reads gets every message meanwhile."""
    t = emsfast.Topic(uniq("flood.t"))
    user = uniq("slow").replace(".", "_")
    async with connection(server.url) as reader, connection(server.url) as sender:
        bystander = Bystander(reader, emsfast.Queue(uniq("bystander")))
        good = reader.session().consumer(t)
        await good.ready
        stuck = await asyncio.to_thread(never_reads, server, user, "topic", t.name)
        with stuck:
            await asyncio.to_thread(stuck.read_frame)   # subscribed before the flood
            # Batches the reader takes before the next: only the stuck one falls behind.
            got = await flood_in_batches(sender, t, good, FLOOD_COUNT)
            line = await asyncio.to_thread(
                server.wait_for_line, f"[{user}@127.0.0.1]: connection closed: ", 30)
            texts = await asyncio.to_thread(closed_for_pending, stuck)
        await bystander.round_trip()
    assert f"max_client_pending_bytes ({PENDING})" in line, line
    assert texts, "closed without an ERROR naming max_client_pending_bytes"
    assert [text_of(m)[:6] for m in got] == [f"{i:06d}" for i in range(FLOOD_COUNT)]
    assert server.is_running()


def test_pending_cap_stomp_subscriber_that_never_reads(server, uniq):
    """The STOMP listener applies the same cap."""
    t = uniq("flood.st")
    port = stomp_port(server)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"CONNECT\naccept-version:1.2\nlogin:stompslow\n\n\0")
        assert recv_frame(sock).startswith(b"CONNECTED")
        shrink_receive_buffer(sock)
        sock.sendall(f"SUBSCRIBE\nid:1\ndestination:/topic/{t}\nack:client\n"
                     "activemq.prefetchSize:1000000\nreceipt:r1\n\n\0".encode())
        assert recv_frame(sock).startswith(b"RECEIPT")
        asyncio.run(flood(server.url, emsfast.Topic(t), n=FLOOD_COUNT))
        line = server.wait_for_line("[stompslow@127.0.0.1]: connection closed: ", 30)
        reply = recv_until_closed(sock, timeout=30)
    assert f"max_client_pending_bytes ({PENDING})" in line, line
    assert f"max_client_pending_bytes ({PENDING})".encode() in reply[-4096:]
    assert server.is_running()


# -- set server ---------------------------------------------------------------------------


async def test_limits_change_at_run_time(server_factory, uniq):
    srv = server_factory()
    q = emsfast.Queue(uniq("q"))

    async def admin(conn, command):
        return (await conn.request("admin.command", {"command": command}))["lines"]

    async with connection(srv.url, user="admin") as conn:
        lines = await admin(conn, "set server max_selector_length=10")
        assert "'max_selector_length' has been set" in lines[0]
        async with connection(srv.url) as other:
            assert other.max_selector_length == 10
            with pytest.raises(errors.SelectorError, match=r"max_selector_length \(10\)"):
                other.session().consumer(q, "a = 1 OR a = 2")
        await admin(conn, "set server max_client_pending_bytes=2MB")
        shown = "\n".join(await admin(conn, "show config"))
    assert re.search(r"max_client_pending_bytes: 2097152\b", shown), shown
    text = srv.config_path.read_text()
    assert re.search(r"^max_selector_length\s*= 10$", text, re.M), text
    assert re.search(r"^max_client_pending_bytes\s*= 2MB$", text, re.M), text


# -- STOMP helpers ----------------------------------------------------------------------

_STOMP_LINE = re.compile(r"Accepting STOMP connections on stomp://[^/\s]*/([^\s]+):(\d+)\.")


def stomp_port(srv) -> int:
    m = _STOMP_LINE.search(srv.log_text())
    assert m is not None, srv.log_text()
    return int(m.group(2))


def recv_frame(sock) -> bytes:
    data = b""
    while not data.endswith(b"\0"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data.lstrip(b"\n")


def recv_until_closed(sock, timeout: float = 10.0) -> bytes:
    reply = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            return reply
        reply += chunk
    raise AssertionError(f"the server kept the connection open for {timeout}s")



async def test_client_ack_subscriber_is_not_cut_for_acking_late(server, uniq):
    """Delivered-but-unacknowledged bytes went to a client that reads: a CLIENT_ACK
    topic subscriber taking every message at once and acking at the end stays, even
    with far more than max_client_pending_bytes unacknowledged."""
    t = emsfast.Topic(uniq("ackslow.t"))
    count = 300     # 300 × 8 KB = 2.4 MB unacknowledged, over the 1 MB cap
    async with connection(server.url) as reader, connection(server.url) as sender:
        session = reader.session(ack_mode="client")
        consumer = session.consumer(t)
        await consumer.ready
        got = await flood_in_batches(sender, t, consumer, count)
        got[-1].acknowledge()
        await reader.ping()
    assert [text_of(m)[:6] for m in got] == [f"{i:06d}" for i in range(count)]
    assert f"subscription to '{t.name}'" not in server.log_text()


async def test_a_message_larger_than_the_pending_cap_is_still_delivered(server_factory, uniq):
    """The cap never falls below one largest message (max_msg_size) plus a write batch:
    otherwise every consumer of a big message would be cut off in turn."""
    srv = server_factory(max_msg_size="16MB", params={"max_client_pending_bytes": "1MB"})
    q = emsfast.Queue(uniq("big"))
    body = "b" * (12 * 1024 * 1024)
    async with connection(srv.url) as conn:
        session = conn.session()
        await session.producer(q).send(emsfast.TextMessage(body))
        msg = await session.consumer(q).receive(60)
        assert msg is not None and len(text_of(msg)) == len(body) and not msg.redelivered
    assert "max_client_pending_bytes" not in srv.log_text()


async def test_max_client_objects(server_factory, uniq):
    """Sessions, producers, consumers, browsers and temporary destinations of one
    connection are capped; the refused create names the limit, the rest go on."""
    srv = server_factory(params={"max_client_objects": "5"})
    async with connection(srv.url) as greedy, connection(srv.url) as other:
        sessions = [greedy.session() for _ in range(3)]
        q = emsfast.Queue(uniq("objs"))
        producer = sessions[0].producer(q)
        consumer = sessions[1].consumer(q)
        await asyncio.gather(*(s.ready for s in sessions), producer.ready, consumer.ready)
        extra = greedy.session()
        with pytest.raises(errors.LimitError, match=r"max_client_objects \(5\)"):
            await extra.ready
        # What it has still works, and so does everybody else.
        await producer.send(emsfast.TextMessage("mine"))
        got = await consumer.receive(10)
        assert got is not None and text_of(got) == "mine"
        bystander = Bystander(other, emsfast.Queue(uniq("bystander")))
        await bystander.round_trip()
    line = await asyncio.to_thread(srv.wait_for_line, "max_client_objects (5)", 10)
    assert "session.create refused: this connection has 5 objects" in line


def test_max_client_objects_counts_stomp_subscriptions(server_factory, uniq):
    srv = server_factory(params={"max_client_objects": "6",
                                 "stomp_listen": "tcp://127.0.0.1:0"})
    with socket.create_connection(("127.0.0.1", stomp_port(srv)), timeout=10) as sock:
        sock.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
        assert recv_frame(sock).startswith(b"CONNECTED")
        for i in range(10):
            dest = f"/queue/{uniq('so')}"
            try:
                sock.sendall(f"SUBSCRIBE\nid:{i}\ndestination:{dest}\n\n\0".encode())
            except (BrokenPipeError, ConnectionResetError):
                break
        reply = recv_until_closed(sock)
    assert b"max_client_objects (6)" in reply, reply
    srv.wait_for_line("SUBSCRIBE refused: this connection has", 10)
