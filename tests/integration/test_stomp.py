"""STOMP 1.2 clients (the stomp.py library) against a real emsfastd (issue 10 item 4)."""

from __future__ import annotations

import queue
import re
import socket
import time
from typing import Any

import pytest

import emsfast
import emsfast.blocking

stomp = pytest.importorskip("stomp")

pytestmark = pytest.mark.timeout(60)

_STOMP_LINE = re.compile(r"Accepting STOMP connections on stomp://[^/\s]*/([^\s]+):(\d+)\.")


@pytest.fixture(scope="module")
def server(module_server_factory):
    return module_server_factory(params={"stomp_listen": "tcp://127.0.0.1:0"})


def stomp_port(srv) -> int:
    m = _STOMP_LINE.search(srv.log_text())
    assert m is not None, srv.log_text()
    return int(m.group(2))


class Frames:
    """A stomp.py listener that queues everything, for waits with timeouts."""

    def __init__(self) -> None:
        self.messages: queue.Queue[Any] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()
        self.errors: queue.Queue[Any] = queue.Queue()

    def on_message(self, frame: Any) -> None:
        self.messages.put(frame)

    def on_receipt(self, frame: Any) -> None:
        self.receipts.put(frame.headers["receipt-id"])

    def on_error(self, frame: Any) -> None:
        self.errors.put(frame)

    def message(self, timeout: float = 10) -> Any:
        return self.messages.get(timeout=timeout)

    def receipt(self, timeout: float = 10) -> str:
        return self.receipts.get(timeout=timeout)

    def no_message(self, wait: float = 0.3) -> bool:
        try:
            self.messages.get(timeout=wait)
        except queue.Empty:
            return True
        return False


def client(srv, **connect: Any) -> tuple[Any, Frames]:
    conn = stomp.Connection12([("127.0.0.1", stomp_port(srv))], reconnect_attempts_max=1)
    frames = Frames()
    conn.set_listener("t", frames)
    conn.connect(wait=True, **connect)
    return conn, frames


@pytest.fixture
def stomp_client(server):
    conns = []

    def make(**connect: Any) -> tuple[Any, Frames]:
        conn, frames = client(server, **connect)
        conns.append(conn)
        return conn, frames

    yield make
    for conn in conns:
        if conn.is_connected():
            conn.disconnect()


def test_queue_send_receive(stomp_client, uniq):
    q = "/queue/" + uniq("sq")
    conn, frames = stomp_client()
    conn.subscribe(q, id="s1", ack="auto")
    conn.send(q, "hello", headers={"color": "red"})
    msg = frames.message()
    assert msg.body == "hello"
    assert msg.headers["destination"] == q and msg.headers["subscription"] == "s1"
    assert msg.headers["color"] == "red"


def test_topic_fan_out(stomp_client, uniq):
    t = "/topic/" + uniq("st")
    a, fa = stomp_client()
    b, fb = stomp_client()
    a.subscribe(t, id="a", receipt="ra")
    b.subscribe(t, id="b", receipt="rb")
    assert fa.receipt() == "ra" and fb.receipt() == "rb"
    a.send(t, "news")
    assert fa.message().body == "news" and fb.message().body == "news"


def test_persistent_with_receipt_then_received(stomp_client, uniq):
    q = "/queue/" + uniq("sp")
    conn, frames = stomp_client()
    conn.send(q, "kept", headers={"persistent": "true", "receipt": "r-1"})
    assert frames.receipt() == "r-1"
    conn.subscribe(q, id="s", ack="auto")
    msg = frames.message()
    assert msg.body == "kept" and msg.headers["persistent"] == "true"


def test_client_individual_ack_and_nack_redelivery(stomp_client, uniq):
    q = "/queue/" + uniq("si")
    conn, frames = stomp_client()
    for text in ("one", "two"):
        conn.send(q, text)
    conn.subscribe(q, id="s", ack="client-individual")
    first, second = frames.message(), frames.message()
    assert (first.body, second.body) == ("one", "two")
    conn.ack(second.headers["ack"])
    conn.nack(first.headers["ack"])
    again = frames.message()
    assert again.body == "one" and again.headers.get("redelivered") == "true"
    conn.ack(again.headers["ack"], receipt="acked")
    assert frames.receipt() == "acked"
    # Nothing left: a fresh subscriber sees only a marker sent afterwards.
    conn.unsubscribe("s")
    conn.send(q, "marker")
    other, of = stomp_client()
    other.subscribe(q, id="x")
    assert of.message().body == "marker" and of.no_message()


def test_unacked_messages_return_when_the_client_leaves(server, stomp_client, uniq):
    q = "/queue/" + uniq("sl")
    conn, frames = client(server)
    conn.send(q, "held")
    conn.subscribe(q, id="s", ack="client")
    assert frames.message().body == "held"
    conn.disconnect()
    other, of = stomp_client()
    other.subscribe(q, id="s2")
    msg = of.message()
    assert msg.body == "held" and msg.headers.get("redelivered") == "true"


def test_transaction_commit_and_abort(stomp_client, uniq):
    q = "/queue/" + uniq("stx")
    conn, frames = stomp_client()
    conn.subscribe(q, id="s")
    tx = conn.begin()
    conn.send(q, "aborted", transaction=tx)
    conn.abort(tx)
    tx = conn.begin()
    conn.send(q, "committed", transaction=tx)
    assert frames.no_message()
    conn.commit(tx, receipt="c")
    assert frames.receipt() == "c"
    assert frames.message().body == "committed"
    assert frames.no_message()


def test_jms_client_receives_stomp_message(server, stomp_client, uniq):
    name = uniq("sj")
    conn, frames = stomp_client()
    with emsfast.blocking.connect(server.url) as jms:
        consumer = jms.session().consumer(emsfast.Queue(name))
        conn.send("/queue/" + name, "from stomp", headers={"region": "eu", "receipt": "r"})
        assert frames.receipt() == "r"
        text = consumer.receive(timeout=10)
        conn.send("/queue/" + name, b"\x00\xff", content_type="application/octet-stream")
        raw = consumer.receive(timeout=10)
    assert isinstance(text, emsfast.TextMessage) and text.text == "from stomp"
    assert text.properties["region"] == "eu"
    assert isinstance(raw, emsfast.BytesMessage) and raw.body == b"\x00\xff"


def test_stomp_client_receives_jms_message(server, stomp_client, uniq):
    name = uniq("sr")
    conn, frames = stomp_client()
    conn.subscribe("/topic/" + name, id="s", receipt="sub")
    assert frames.receipt() == "sub"
    with emsfast.blocking.connect(server.url) as jms:
        jms.session().producer(emsfast.Topic(name)).send(
            emsfast.TextMessage("from jms", properties={"n": 7, "ok": True}))
    msg = frames.message()
    assert msg.body == "from jms"
    assert msg.headers["destination"] == "/topic/" + name
    assert msg.headers["n"] == "7" and msg.headers["ok"] == "true"
    assert msg.headers["content-type"].startswith("text/plain")


def test_selector_header(stomp_client, uniq):
    q = "/queue/" + uniq("ss")
    conn, frames = stomp_client()
    conn.subscribe(q, id="s", headers={"selector": "color = 'blue'"})
    conn.send(q, "red one", headers={"color": "red"})
    conn.send(q, "blue one", headers={"color": "blue"})
    assert frames.message().body == "blue one"


def read_until_closed(srv, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", stomp_port(srv)), timeout=10) as raw:
        if data:
            raw.sendall(data)
        reply = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = raw.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
    return reply


def test_bad_frame_gets_error_and_others_are_unaffected(server, stomp_client, uniq):
    q = "/queue/" + uniq("sb")
    good, frames = stomp_client()
    good.subscribe(q, id="s", receipt="ok")
    assert frames.receipt() == "ok"
    reply = read_until_closed(server, b"CONNECT\naccept-version:1.2\nhost:x\n\n\0BOGUS\n\n\0")
    assert reply.startswith(b"CONNECTED\n")
    assert b"\nERROR\n" in reply or b"\0ERROR\n" in reply
    assert b"unknown command" in reply
    good.send(q, "still fine")
    assert frames.message().body == "still fine"


def test_send_to_bad_destination_is_an_error(stomp_client):
    conn, frames = stomp_client()
    conn.send("/nowhere/x", "lost")
    err = frames.errors.get(timeout=10)
    assert "destination must be /queue/NAME or /topic/NAME" in err.headers["message"]


def test_send_with_expires_beyond_int64_is_an_error(stomp_client, uniq):
    q = "/queue/" + uniq("sx")
    conn, frames = stomp_client()
    conn.send(q, "too far", headers={"expires": "9" * 20})
    err = frames.errors.get(timeout=10)
    assert "expires must be 0.." in err.headers["message"]
    good, good_frames = stomp_client()
    good.subscribe(q, id="s", receipt="ok")
    assert good_frames.receipt() == "ok"
    good.send(q, "fine")
    assert good_frames.message().body == "fine"


def test_heart_beats_negotiated(server):
    conn = stomp.Connection12([("127.0.0.1", stomp_port(server))], heartbeats=(1000, 1000),
                              reconnect_attempts_max=1)
    frames = Frames()
    conn.set_listener("t", frames)
    conn.connect(wait=True)
    try:
        time.sleep(2.5)     # more than two periods: both sides must have beaten
        assert conn.is_connected()
    finally:
        conn.disconnect()


@pytest.fixture(scope="module")
def secure_server(module_server_factory, tmp_path_factory):
    from emsfast.auth.passwords import hash_password

    d = tmp_path_factory.mktemp("stompsec")
    (d / "users.conf").write_text(f"alice:{hash_password('secret')}:\nadmin::\n")
    (d / "acl.conf").write_text("TOPIC=open USER=alice PERM=publish,subscribe\n")
    (d / "groups.conf").write_text("")
    return module_server_factory(
        queues="closed secure\n>\n", topics="open secure\n>\n",
        params={"stomp_listen": "tcp://127.0.0.1:0", "authorization": "enabled",
                "users": str(d / "users.conf"), "acl_list": str(d / "acl.conf"),
                "groups": str(d / "groups.conf")})


def test_login_and_acls(secure_server):
    port = stomp_port(secure_server)
    bad = stomp.Connection12([("127.0.0.1", port)], reconnect_attempts_max=1)
    with pytest.raises(stomp.exception.ConnectFailedException):
        bad.connect("alice", "wrong", wait=True)
    conn, frames = client(secure_server, username="alice", passcode="secret")
    try:
        conn.subscribe("/topic/open", id="s", receipt="sub")
        assert frames.receipt() == "sub"
        conn.send("/topic/open", "allowed")
        assert frames.message().body == "allowed"
        conn.send("/queue/closed", "denied")
        err = frames.errors.get(timeout=10)
        assert "not allowed" in err.headers["message"]
    finally:
        if conn.is_connected():
            conn.disconnect()


def test_max_connections_counts_stomp_clients(server_factory):
    srv = server_factory(max_connections=1, params={"stomp_listen": "tcp://127.0.0.1:0"})
    with emsfast.blocking.connect(srv.url):
        # Refused before any frame is read: an ERROR frame, then the socket closes.
        assert read_until_closed(srv, b"").startswith(b"ERROR\n")
    assert "STOMP connect failed: max_connections (1) reached" in srv.log_text()


def test_silent_client_is_dropped_after_handshake_timeout(server_factory):
    srv = server_factory(params={"stomp_listen": "tcp://127.0.0.1:0", "handshake_timeout": "1"})
    reply = read_until_closed(srv, b"")
    assert reply.startswith(b"ERROR\n") and b"no CONNECT frame" in reply
