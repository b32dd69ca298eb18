"""health_check_listen: /isLive, /isReady, /metrics scraped with a real HTTP client."""

from __future__ import annotations

import http.client
import re
import socket
import time
import urllib.error
import urllib.request

import pytest

import emsfast
import emsfast.blocking

pytestmark = pytest.mark.timeout(60)

_HEALTH_LINE = re.compile(r"Health check listening on http://[^/\s]*/([^\s]+):(\d+)\.")


@pytest.fixture(scope="module")
def server(module_server_factory):
    return module_server_factory(params={"health_check_listen": "http://127.0.0.1:0"})


def health_port(srv) -> int:
    m = _HEALTH_LINE.search(srv.log_text())
    assert m is not None, srv.log_text()
    return int(m.group(2))


def get(srv, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{health_port(srv)}{path}",
                                    timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def sample(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name + ("{" + want + "}" if labels else "")) + r" (\S+)"
    m = re.search("^" + pattern + "$", text, re.M)
    assert m is not None, f"no sample {name}{labels} in:\n{text}"
    return float(m.group(1))


def test_live_and_ready(server):
    assert get(server, "/isLive")[0] == 200
    status, _, body = get(server, "/isReady")
    assert status == 200 and body == "ready\n"
    assert get(server, "/nope")[0] == 404


def test_health_line_comes_before_active(server):
    log = server.log_text()
    assert log.index("Health check listening on") < log.index("Server is active.")


def test_metrics_per_destination(server, uniq):
    q, t = uniq("q"), uniq("t")
    with emsfast.blocking.connect(server.url) as conn:
        session = conn.session()
        sub = session.consumer(emsfast.Topic(t))
        producer = session.producer(emsfast.Queue(q))
        for i in range(3):
            producer.send(emsfast.TextMessage(f"m{i}"))
        session.producer(emsfast.Topic(t)).send(emsfast.TextMessage("to-topic"))
        assert sub.receive(timeout=10) is not None
        got = session.consumer(emsfast.Queue(q)).receive(timeout=10)
        assert got is not None
        status, ctype, text = get(server, "/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
        assert sample(text, "emsfast_connections", protocol="emsfast") >= 1
        assert sample(text, "emsfast_messages_received_total", kind="queue",
                      destination=q) == 3
        assert sample(text, "emsfast_messages_delivered_total", kind="queue",
                      destination=q) >= 1
        assert sample(text, "emsfast_pending_messages", kind="queue", destination=q) >= 2
        assert sample(text, "emsfast_pending_bytes", kind="queue", destination=q) > 0
        assert sample(text, "emsfast_messages_received_total", kind="topic",
                      destination=t) == 1
        assert sample(text, "emsfast_messages_delivered_total", kind="topic",
                      destination=t) == 1
    assert sample(text, "emsfast_ft_state", state="active") == 1
    assert sample(text, "emsfast_ft_state", state="standby") == 0
    assert sample(text, "emsfast_ft_failovers_total") == 0
    assert sample(text, "emsfast_ready") == 1
    # Every family is declared once, before its samples (Prometheus text format 0.0.4).
    types = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    assert len(types) == len({name for name, _ in types})


def test_keep_alive_and_head(server):
    conn = http.client.HTTPConnection("127.0.0.1", health_port(server), timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/isLive")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b"live\n"
        conn.request("HEAD", "/isReady")
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b""
    finally:
        conn.close()


def raw(srv, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", health_port(srv)), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", b"405"),
        (b"GET /isLive HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", b"413"),
        (b"garbage\r\n\r\n", b"400"),
        (b"GET /isLive HTTP/1.1\r\n" + b"X-A: b\r\n" * 40 + b"\r\n", b"431"),
        (b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n", b"431"),
    ],
)
def test_bad_requests_are_refused_and_closed(server, request_bytes, status):
    reply = raw(server, request_bytes)
    assert reply.startswith(b"HTTP/1.1 " + status), reply[:100]
    assert b"Connection: close" in reply
    assert get(server, "/isLive")[0] == 200


def test_idle_connection_does_not_block_others(server):
    # A client that connects and says nothing must not delay anyone else.
    with socket.create_connection(("127.0.0.1", health_port(server)), timeout=10):
        started = time.monotonic()
        assert get(server, "/isReady")[0] == 200
        assert time.monotonic() - started < 5


def test_not_ready_while_shutting_down_and_exit_zero(server_factory):
    srv = server_factory(params={"health_check_listen": "http://127.0.0.1:0"})
    assert get(srv, "/isReady")[0] == 200
    port = health_port(srv)
    assert srv.stop() == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_bad_health_url_is_a_config_error(server_factory):
    srv = server_factory(start=False, params={"health_check_listen": "ftp://:7220"})
    srv.start(wait_ready=False)
    assert srv.wait() == 1
    assert "health_check_listen" in srv.log_text()


def test_store_commit_latency_histogram(server, uniq):
    with emsfast.blocking.connect(server.url) as conn:
        producer = conn.session().producer(emsfast.Queue(uniq("q")))
        for i in range(5):
            producer.send(emsfast.TextMessage(f"p{i}"))     # persistent: one commit each
    status, _ctype, text = get(server, "/metrics")
    assert status == 200
    count = sample(text, "emsfast_store_commit_seconds_count")
    assert count >= 5
    assert sample(text, "emsfast_store_commit_seconds_bucket", le="+Inf") == count
    assert sample(text, "emsfast_store_commit_seconds_sum") > 0
