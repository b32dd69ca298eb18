"""Client/server heartbeats (EMS.md 2.5) on real daemons.

A client learns ``client_timeout_server_connection`` in WELCOME and gives up a
server it hears nothing from (a hung, SIGSTOPped active): with an FT URL list it
fails over to the backup by itself. The server drops a client silent for
``server_timeout_client_connection`` while a client that beats stays connected.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import emsfast
from emsfast._testbase.ft_pair import FTPair
from emsfast._testbase.rawwire import RawConnection
from emsfast._testbase.server_process import ServerProcess
from emsfast.consts import FRAME_HEARTBEAT
from emsfast.errors import ConnectionClosedError

BEATS = {"server_heartbeat_client": "1", "client_timeout_server_connection": "3"}


def test_client_fails_over_from_a_hung_active(tmp_path: Path) -> None:
    pair = FTPair(tmp_path, heartbeat=1, activation=3, params=BEATS)
    try:
        a = pair.start_active("a")
        pair.start_standby("b")

        async def scenario() -> list[str]:
            switched = asyncio.Event()
            conn = await emsfast.connect(
                pair.urls, reconnect_attempt_count=60, reconnect_attempt_delay=0.25,
                exception_listener=lambda exc: switched.set(), exception_on_ft_switch=True)
            async with conn:
                session = conn.session()
                producer = session.producer(emsfast.Queue("hb.q"))
                await producer.send(emsfast.TextMessage("before"))
                os.kill(a.pid, signal.SIGSTOP)     # hung, holding its socket open
                # Without heartbeats this send would wait for the hung server forever.
                await asyncio.wait_for(producer.send(emsfast.TextMessage("after")), 30)
                await asyncio.wait_for(switched.wait(), 5)
                consumer = session.consumer(emsfast.Queue("hb.q"))
                texts = []
                for _ in range(2):
                    msg = await consumer.receive(10)
                    assert msg is not None
                    texts.append(msg.body)
                return texts

        assert asyncio.run(scenario()) == ["before", "after"]
        assert "Server is active." in pair.members["b"].log_text()
    finally:
        for proc in pair.members.values():
            if proc.returncode is None:
                os.kill(proc.pid, signal.SIGCONT)
        pair.cleanup()


def test_client_alone_reports_the_silent_server(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "d", params=BEATS).start()
    try:
        async def scenario() -> str:
            conn = await emsfast.connect(srv.url)
            os.kill(srv.pid, signal.SIGSTOP)
            try:
                deadline = time.monotonic() + 30
                while not conn.is_closed and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                try:
                    await conn.ping()
                except ConnectionClosedError as exc:
                    return str(exc)
                return "still open"
            finally:
                os.kill(srv.pid, signal.SIGCONT)
                await conn.close()

        text = asyncio.run(scenario())
        assert "client_timeout_server_connection 3 s" in text, text
    finally:
        srv.cleanup()


def test_server_drops_a_silent_client_and_keeps_one_that_beats(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "d", params={
        "client_heartbeat_server": "1", "server_timeout_client_connection": "3"}).start()
    try:
        async def beating_client_survives(raw: RawConnection) -> None:
            async with await emsfast.connect(srv.url) as conn:
                # The raw client says nothing after its login: dropped by the server.
                frames = await asyncio.to_thread(raw.read_until_closed, 30)
                assert all(f[0] == FRAME_HEARTBEAT for f in frames), frames
                # Our client beat meanwhile (1 s) and was not dropped.
                await conn.ping()
                producer = conn.session().producer(emsfast.Queue("hb.alive"))
                await producer.send(emsfast.TextMessage("still here"))

        with RawConnection("127.0.0.1", srv.port) as raw:
            welcome = raw.login()
            assert welcome["client_heartbeat_server"] == 1
            asyncio.run(beating_client_survives(raw))
        srv.wait_for_line("nothing received for", 10)
        assert "server_timeout_client_connection 3 s" in srv.log_text()
    finally:
        srv.cleanup()


def test_welcome_tells_the_client_the_heartbeat_settings(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "d").start()
    try:
        with RawConnection("127.0.0.1", srv.port) as raw:
            welcome = raw.login()
        # Defaults (EMS.md 2.5): the server beats every 5 s, the rest is off.
        assert welcome["server_heartbeat_client"] == 5
        assert welcome["client_heartbeat_server"] == 0
        assert welcome["client_timeout_server_connection"] == 0
    finally:
        srv.cleanup()


def test_idle_admin_session_keeps_its_connection(tmp_path: Path) -> None:
    """emsfast-admin waits at its prompt with the loop running in a thread, so its
    heartbeats go out and the server does not drop an idle operator."""
    from emsfast.cli.admin import AdminSession

    srv = ServerProcess(tmp_path / "d", params={
        "client_heartbeat_server": "1", "server_timeout_client_connection": "3"}).start()
    session = AdminSession(srv.url, "admin")
    try:
        session.connect(srv.url, "admin", None)
        assert session.run("info")
        time.sleep(6)       # twice the server's timeout, idle at the "prompt"
        assert session.connected and session.run("info")
        assert "nothing received for" not in srv.log_text()
    finally:
        session.shutdown()
        srv.cleanup()


def test_set_server_checks_heartbeat_rules_and_spares_existing_clients(tmp_path: Path) -> None:
    """set server applies the rules the next start would (a timeout needs its beat)
    and a timeout set at run time judges only clients told to beat at login."""
    from emsfast.cli.admin import AdminSession
    from emsfast.errors import InvalidError

    srv = ServerProcess(tmp_path / "d").start()
    session = AdminSession(srv.url, "admin")
    try:
        session.connect(srv.url, "admin", None)
        try:
            session.run("set server server_timeout_client_connection=3")
            raise AssertionError("a timeout without client_heartbeat_server was accepted")
        except InvalidError as exc:
            assert "requires client_heartbeat_server" in str(exc)
        assert "server_timeout_client_connection" not in srv.config_path.read_text()
        session.run("set server client_heartbeat_server=1 server_timeout_client_connection=3")
        time.sleep(5)       # past the new timeout: this session was told no beat
        assert session.connected and session.run("info")
        assert "nothing received for" not in srv.log_text()
        # A client logging in now learns the beat and keeps to it.
        later = AdminSession(srv.url, "admin")
        try:
            later.connect(srv.url, "admin", None)
            time.sleep(5)
            assert later.connected and later.run("info")
        finally:
            later.shutdown()
    finally:
        session.shutdown()
        srv.cleanup()
