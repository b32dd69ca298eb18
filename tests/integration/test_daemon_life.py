"""Daemon life under a service manager: sd_notify, log rotation, SIGTERM (issue 10)."""

from __future__ import annotations

import socket
import tempfile
import threading
from pathlib import Path

import pytest

import emsfast
import emsfast.blocking

pytestmark = pytest.mark.timeout(60)


def test_sd_notify_ready_then_stopping(server_factory, monkeypatch):
    with tempfile.TemporaryDirectory(prefix="sdn") as d:  # short: AF_UNIX paths < 108
        path = str(Path(d) / "notify")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(path)
            sock.settimeout(20)
            monkeypatch.setenv("NOTIFY_SOCKET", path)
            srv = server_factory()
            ready = sock.recv(4096).decode()
            assert "READY=1" in ready.splitlines()
            assert f"MAINPID={srv.pid}" in ready.splitlines()
            # READY=1 is sent only once clients can connect.
            with emsfast.blocking.connect(srv.url):
                pass
            assert srv.stop() == 0
            assert "STOPPING=1" in sock.recv(4096).decode().splitlines()


def test_missing_notify_socket_only_warns(server_factory, monkeypatch, tmp_path):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    srv = server_factory()
    srv.wait_for_line("systemd notify (READY=1) failed", 10)
    assert srv.stop() == 0


def test_logfile_rotates_at_max_size(server_factory):
    # The start-up lines alone are over 600 bytes.
    srv = server_factory(params={"logfile_max_size": "600"})
    log = Path(srv.params["logfile"])
    first = Path(f"{log}.1")
    srv.wait_logfile("Log file saved as")
    assert first.exists() and first.stat().st_size >= 600
    assert f"Log file saved as '{first}'." in log.read_text()
    assert srv.stop() == 0
    assert "Server is stopped." in "".join(
        p.read_text() for p in sorted(log.parent.glob(log.name + "*")))


def test_sigterm_with_busy_clients_closes_listener_and_exits_zero(server_factory, uniq):
    srv = server_factory()
    q = uniq("q")
    stop_sending = threading.Event()
    errors: list[BaseException] = []

    def send_forever() -> None:
        try:
            with emsfast.blocking.connect(srv.url) as conn:
                producer = conn.session().producer(emsfast.Queue(q))
                while not stop_sending.is_set():
                    producer.send(emsfast.TextMessage("x"))
        except BaseException as exc:  # the server going away ends the loop
            errors.append(exc)

    sender = threading.Thread(target=send_forever, daemon=True)
    sender.start()
    with emsfast.blocking.connect(srv.url) as conn:
        assert conn.session().consumer(emsfast.Queue(q)).receive(timeout=10) is not None
        port = srv.port
        assert srv.stop() == 0
    stop_sending.set()
    sender.join(20)
    assert not sender.is_alive()
    log = srv.log_text()
    assert log.index("Server shutting down.") < log.index("Server is stopped.")
    assert "ERROR" not in log
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
