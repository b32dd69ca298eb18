"""Fault-tolerant pairs with real processes (issue 7 item 8; EMS.md §1).

Two daemons on one host share a store directory; heartbeats 1 s and activation
3 s keep the suite fast. The lock wakes a standby at once on process death; a
hung (SIGSTOPped) active is replaced after ft_activation and fenced (exit 3).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import emsfast
from emsfast._testbase.clientutil import connection, text_of
from emsfast._testbase.ft_pair import STANDBY_LINE, FTPair
from emsfast._testbase.rawwire import RawConnection, control, publish, text_blob
from emsfast._testbase.server_process import ServerProcess, run_cli
from emsfast.consts import FRAME_CONFIRM, FRAME_HELLO, HELLO_MAGIC, PROTOCOL_VERSION
from emsfast.errors import EmsfastError, StandbyError, TransactionRolledBackError
from emsfast.store.lmdb_store import MARK_DELAY

pytestmark = pytest.mark.timeout(60)

CLIENT_ERRORS = (EmsfastError, ConnectionError, OSError, asyncio.TimeoutError)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[FTPair]:
    p = FTPair(tmp_path)
    yield p
    p.cleanup()


def admin(url: str, command: str, rc_expected: int = 0) -> str:
    rc, out, err = run_cli("admin", ["-server", url, "-user", "admin"], input=command + "\n")
    assert rc == rc_expected, err
    return out + err


async def send(url: str, queue: str, bodies: list[str]) -> None:
    async with connection(url) as conn:
        producer = conn.session().producer(emsfast.Queue(queue))
        for body in bodies:
            await producer.send(emsfast.TextMessage(body))


async def drain(url: str, queue: str, timeout: float = 1.0) -> list[Any]:
    async with connection(url) as conn:
        consumer = conn.session().consumer(emsfast.Queue(queue))
        out = []
        while (msg := await consumer.receive(timeout)) is not None:
            out.append(msg)
        return out


@pytest.mark.parametrize("first", ["a", "b"])
def test_start_order_standby_refuses_clients_and_serves_admin(pair: FTPair, first: str) -> None:
    second = pair.peer(first)
    active = pair.start_active(first)
    standby = pair.start_standby(second)
    assert f"Server is in standby mode for '{pair.url(first)}'." in standby.log_text()

    with pytest.raises(StandbyError):
        asyncio.run(emsfast.connect(pair.url(second)))
    standby.wait_for_line("[anonymous@127.0.0.1]: connect failed: server in standby mode", 5)

    info = admin(pair.url(second), "info")
    assert "State: standby" in info and f"FT Peer: {pair.url(first)}" in info
    state = admin(pair.url(first), "show state")
    assert "State: active" in state and "FT Mode: fully operational" in state
    # A change on the standby is refused: its store is not open.
    assert "standby" in admin(pair.url(second), "create queue q.on.standby", 1)

    # The URL list skips the standby whatever the order.
    async def via_list() -> str:
        async with connection(f"{pair.url(second)},{pair.url(first)}") as conn:
            return str(conn.url)

    assert asyncio.run(via_list()) == pair.url(first)
    assert active.is_running() and standby.is_running()


def test_kill9_active_standby_takes_over_and_old_active_returns_as_standby(
        pair: FTPair) -> None:
    a = pair.start_active("a")
    b = pair.start_standby("b")
    asyncio.run(send(pair.url("a"), "ft.q", [f"m{i}" for i in range(100)]))
    killed = time.monotonic()
    a.kill()
    b.wait_for_line("Server is active.", 10)
    took = time.monotonic() - killed
    # The lock wakes the standby: no waiting for ft_activation.
    assert took < pair.activation, f"takeover took {took:.2f} s"
    log = b.log_text()
    for line in (f"Server activating on failure of '{pair.url('a')}'.",
                 "Server rereading configuration.", "Recovering state, please wait.",
                 "Recovered 100 messages"):
        assert line in log
    got = asyncio.run(drain(pair.urls, "ft.q"))
    assert [text_of(m) for m in got] == [f"m{i}" for i in range(100)]

    # Roles swap: the restarted former active finds b active.
    a2 = pair.start_standby("a")
    assert f"standby mode for '{pair.url('b')}'" in a2.log_text()
    assert "State: standby" in admin(pair.url("a"), "show state")
    assert "FT Failovers: 1" in admin(pair.url("b"), "info")


def test_sigstop_active_is_replaced_and_fenced_on_wake(pair: FTPair) -> None:
    a = pair.start_active("a")
    b = pair.start_standby("b")
    asyncio.run(send(pair.url("a"), "ft.q", ["before"]))
    os.kill(a.pid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        b.wait_for_line("Server is active.", 10)
        took = time.monotonic() - stopped
        # Silence counts from the last heartbeat, up to one interval before the stop.
        assert pair.activation - pair.heartbeat - 0.2 <= took < pair.activation + 3
        assert f"Missing heartbeats from primary server '{pair.url('a')}'." in b.log_text()
        assert "taking over by epoch" in b.log_text()
        asyncio.run(send(pair.url("b"), "ft.q", ["after"]))
    finally:
        os.kill(a.pid, signal.SIGCONT)
    # The woken active checks the epoch within a heartbeat and stops.
    assert a.wait(10) == 3
    assert "fenced" in a.log_text()
    got = asyncio.run(drain(pair.urls, "ft.q"))
    assert sorted(text_of(m) for m in got) == ["after", "before"]
    # b gets the flock once a is gone; a restarted a becomes standby.
    pair.start_standby("a")


def test_sigstop_active_under_writes_is_fenced_at_commit(pair: FTPair) -> None:
    # The woken active's first commit fails the epoch check: nothing it confirms
    # after the takeover can be lost, because it confirms nothing.
    a = pair.start_active("a")
    b = pair.start_standby("b")

    async def run() -> tuple[list[str], list[str]]:
        confirmed: list[str] = []
        failed: list[str] = []
        async with connection(pair.url("a")) as conn:
            producer = conn.session().producer(emsfast.Queue("ft.w"))
            await producer.send(emsfast.TextMessage("w0"))
            confirmed.append("w0")
            os.kill(a.pid, signal.SIGSTOP)
            await asyncio.to_thread(b.wait_for_line, "Server is active.", 10)
            pending = asyncio.ensure_future(producer.send(emsfast.TextMessage("w1")))
            os.kill(a.pid, signal.SIGCONT)
            try:
                await asyncio.wait_for(pending, 10)
                confirmed.append("w1")
            except CLIENT_ERRORS:
                failed.append("w1")
        return confirmed, failed

    confirmed, failed = asyncio.run(run())
    assert a.wait(10) == 3
    assert failed == ["w1"], confirmed
    got = [text_of(m) for m in asyncio.run(drain(pair.url("b"), "ft.w"))]
    assert got == ["w0"]


def test_wrong_ft_password_is_refused_and_logged_on_both_sides(
        pair: FTPair, tmp_path: Path) -> None:
    users = tmp_path / "users.conf"
    users.write_text("admin::\nEMSFAST-TEST:secret:FT peer\n")
    common = {"authorization": "enabled", "users": str(users)}
    a = pair.start_active("a", {**common, "password": "secret"})
    b = pair.member("b", {**common, "password": "wrong"}).start(wait_ready=False)
    b.wait_for_line("refused the link", 10)
    a.wait_for_line("[EMSFAST-TEST@127.0.0.1]: connect failed", 5)
    time.sleep(1.0)
    # Never two actives: b finds the store locked and keeps trying.
    assert "Server is active." not in b.log_text()
    assert b.is_running() and a.is_running()


def test_peer_with_another_server_name_is_refused(pair: FTPair) -> None:
    a = pair.start_active("a")
    b = pair.member("b", {"server": "OTHER"}).start(wait_ready=False)
    b.wait_for_line("refused the link", 10)
    a.wait_for_line("both members of a pair must use the same server name", 5)
    assert STANDBY_LINE not in b.log_text() and "Server is active." not in b.log_text()


def test_activation_not_more_than_twice_heartbeat_is_a_config_error(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path, params={"ft_active": "tcp://127.0.0.1:1",
                                           "ft_heartbeat": "3", "ft_activation": "6"})
    proc.start(wait_ready=False)
    assert proc.wait(20) == 1
    assert "ft_activation" in proc.log_text() and "twice ft_heartbeat" in proc.log_text()


# -- client failover (EMS.md §2.3) -------------------------------------------------------


def test_kill9_under_load_nothing_confirmed_lost_duplicates_flagged(pair: FTPair) -> None:
    a = pair.start_active("a")
    b = pair.start_standby("b")
    switches: list[str] = []

    async def run() -> tuple[list[str], list[Any], int]:
        confirmed: list[str] = []
        got: list[Any] = []
        opts: dict[str, Any] = {"reconnect_attempt_count": 20, "reconnect_attempt_delay": 0.25,
                                "exception_on_ft_switch": True,
                                "exception_listener": lambda e: switches.append(str(e))}
        prod_conn = await emsfast.connect(pair.urls, **opts)
        cons_conn = await emsfast.connect(pair.urls, **opts)
        producer = prod_conn.session().producer(emsfast.Queue("ft.load"), window=50)
        consumer = cons_conn.session(ack_mode="client").consumer(emsfast.Queue("ft.load"))
        stop = asyncio.Event()

        async def produce() -> None:
            i = 0
            pending: list[tuple[Any, str]] = []
            while not stop.is_set():
                body = f"m{i}"
                i += 1
                pending.append((await producer.send_async(emsfast.TextMessage(body)), body))
                if len(pending) >= 20:
                    for fut, text in pending:
                        await fut
                        confirmed.append(text)
                    pending = []
            for fut, text in pending:
                await fut
                confirmed.append(text)

        async def consume() -> None:
            idle = 0.0
            while not (stop.is_set() and idle >= 2.0):
                msg = await consumer.receive(0.25)
                if msg is None:
                    idle += 0.25
                    continue
                idle = 0.0
                got.append(msg)
                if len(got) % 10 == 0:
                    msg.acknowledge()
            if got:
                got[-1].acknowledge()

        tasks = [asyncio.ensure_future(produce()), asyncio.ensure_future(consume())]
        await asyncio.sleep(1.5)
        await asyncio.to_thread(a.kill)
        await asyncio.to_thread(b.wait_for_line, "Server is active.", 10)
        await asyncio.sleep(1.5)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        failovers = prod_conn.failovers + cons_conn.failovers
        await prod_conn.close()
        await cons_conn.close()
        return confirmed, got, failovers

    confirmed, got, failovers = asyncio.run(run())
    assert failovers == 2 and len(switches) == 2, switches
    texts = [text_of(m) for m in got]
    assert len(confirmed) > 100
    missing = set(confirmed) - set(texts)
    assert not missing, f"{len(missing)} confirmed messages lost, e.g. {sorted(missing)[:5]}"
    seen: set[str] = set()
    for msg, text in zip(got, texts, strict=True):
        if text in seen:
            assert msg.redelivered, f"duplicate {text} not flagged JMSRedelivered"
        seen.add(text)
    # Nothing stored twice: the queue holds nothing after the consumer acked all.
    assert asyncio.run(drain(pair.url("b"), "ft.load", 0.5)) == []


def test_kill9_under_topic_load_durable_gets_each_confirmed_message_once(
        pair: FTPair) -> None:
    """A durable misses nothing confirmed across a kill -9 of the active, and holds
    nothing twice (the resend rule itself is pinned down on the wire below)."""
    a = pair.start_active("a")
    b = pair.start_standby("b")

    async def subscribe_then_leave() -> None:
        async with connection(pair.urls, client_id="ft-sub") as conn:
            sub = conn.session().consumer(emsfast.Topic("ft.prices"), durable="keep")
            await sub.ready
            await sub.close()

    async def publish() -> list[str]:
        confirmed: list[str] = []
        conn = await emsfast.connect(pair.urls, reconnect_attempt_count=20,
                                     reconnect_attempt_delay=0.25)
        producer = conn.session().producer(emsfast.Topic("ft.prices"), window=50)
        stop = asyncio.Event()

        async def produce() -> None:
            i = 0
            while not stop.is_set():
                pending = []
                for _ in range(20):
                    body = f"t{i}"
                    i += 1
                    pending.append((await producer.send_async(emsfast.TextMessage(body)), body))
                for fut, text in pending:
                    await fut
                    confirmed.append(text)

        task = asyncio.ensure_future(produce())
        await asyncio.sleep(1.5)
        await asyncio.to_thread(a.kill)
        await asyncio.to_thread(b.wait_for_line, "Server is active.", 10)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.wait_for(task, 30)
        await conn.close()
        return confirmed

    async def drain_durable() -> list[str]:
        async with connection(pair.url("b"), client_id="ft-sub") as conn:
            session = conn.session()
            sub = session.consumer(emsfast.Topic("ft.prices"), durable="keep")
            got: list[str] = []
            while (msg := await sub.receive(timeout=2.0)) is not None:
                got.append(text_of(msg))
            return got

    asyncio.run(subscribe_then_leave())
    confirmed = asyncio.run(publish())
    got = asyncio.run(drain_durable())
    assert len(confirmed) > 100
    missing = set(confirmed) - set(got)
    assert not missing, f"{len(missing)} confirmed messages lost, e.g. {sorted(missing)[:5]}"
    dups = sorted(t for t, n in collections.Counter(got).items() if n > 1)
    assert not dups, f"stored twice for the durable: {dups[:5]}"


@pytest.mark.parametrize("kind", ["queue", "topic"])
def test_a_resend_with_the_same_seq_is_stored_once(tmp_path: Path, kind: str) -> None:
    """What a client resends after failover (same token, producer and seq) is confirmed
    and dropped, for queues and for the durables of a topic; deterministic, on the wire."""
    srv = ServerProcess(tmp_path / "d")
    try:
        srv.start()
        if kind == "topic":
            asyncio.run(_make_durable(srv.url))
        with RawConnection("127.0.0.1", srv.port) as raw:
            raw.send(control(FRAME_HELLO, {
                "magic": HELLO_MAGIC, "proto": PROTOCOL_VERSION, "lang": "python-raw",
                "version": "0", "client_token": "tok-1"}))
            assert raw.read_frame() is not None
            raw.request("session.create", session=1, ack_mode=1)
            raw.request("producer.create", session=1, producer=1, dest_type=kind,
                        dest="ft.dedup")
            prefix = "q:" if kind == "queue" else "t:"
            for text in ("first", "resent", "second"):
                seq = 2 if text == "second" else 1
                raw.send(publish(1, seq, text_blob(text, prefix + "ft.dedup")))
                while (f := raw.read_frame()) is not None and f[0] != FRAME_CONFIRM:
                    pass
                assert f is not None, "no CONFIRM"
        got = asyncio.run(_drain_kind(srv.url, kind))
        assert got == ["first", "second"]
    finally:
        srv.cleanup()


async def _make_durable(url: str) -> None:
    async with connection(url, client_id="dedup") as conn:
        sub = conn.session().consumer(emsfast.Topic("ft.dedup"), durable="d")
        await sub.ready
        await sub.close()


async def _drain_kind(url: str, kind: str) -> list[str]:
    async with connection(url, client_id="dedup" if kind == "topic" else None) as conn:
        session = conn.session()
        dest: Any = emsfast.Queue("ft.dedup") if kind == "queue" else emsfast.Topic("ft.dedup")
        consumer = session.consumer(dest, durable="d" if kind == "topic" else None)
        got = []
        while (msg := await consumer.receive(timeout=1.0)) is not None:
            got.append(text_of(msg))
        return got


def test_transacted_commit_after_failover_raises_rolled_back(pair: FTPair) -> None:
    a = pair.start_active("a")
    b = pair.start_standby("b")
    asyncio.run(send(pair.url("a"), "ft.tx", ["t1"]))

    async def run() -> tuple[bool, bool]:
        conn = await emsfast.connect(pair.urls, reconnect_attempt_count=20,
                                     reconnect_attempt_delay=0.25)
        session = conn.session(transacted=True)
        consumer = session.consumer(emsfast.Queue("ft.tx"))
        first = await consumer.receive(5)
        assert first is not None and not first.redelivered
        await asyncio.to_thread(a.kill)
        await asyncio.to_thread(b.wait_for_line, "Server is active.", 10)
        with pytest.raises(TransactionRolledBackError):
            await asyncio.wait_for(session.commit(), 10)
        again = await consumer.receive(5)
        assert again is not None and text_of(again) == "t1"
        await session.commit()
        await conn.close()
        return again.redelivered, conn.failovers == 1

    redelivered, switched = asyncio.run(run())
    assert redelivered and switched


def test_client_that_does_not_return_is_cleaned_up_after_ft_reconnect_timeout(
        pair: FTPair) -> None:
    a = pair.start_active("a", {"ft_reconnect_timeout": "2"})
    b = pair.start_standby("b", {"ft_reconnect_timeout": "2"})

    async def run() -> Any:
        conn = await emsfast.connect(pair.urls)
        producer = conn.session().producer(emsfast.Queue("ft.gone"))
        await producer.send(emsfast.TextMessage("held"))
        consumer = conn.session(ack_mode="client").consumer(emsfast.Queue("ft.gone"))
        assert await consumer.receive(5) is not None     # taken, never acknowledged
        await asyncio.sleep(MARK_DELAY + 0.3)             # the delivery mark is written
        await asyncio.to_thread(a.kill)
        await conn.close()                                # gone for good
        await asyncio.to_thread(b.wait_for_line, "Server is active.", 10)
        again = await drain(pair.url("b"), "ft.gone")
        return again

    again = asyncio.run(run())
    # Its unacked message went back to the queue, flagged as delivered once.
    assert [text_of(m) for m in again] == ["held"] and again[0].redelivered
    b.wait_for_line("ft_reconnect_timeout (2 s) expired: 1 client did not reconnect.", 5)


def test_members_that_do_not_share_their_store_are_told(pair: FTPair, tmp_path: Path) -> None:
    pair.start_active("a")
    b = pair.start_standby("b", {"store": str(tmp_path / "not-shared")})
    b.wait_for_line("uses another store", 5)
    assert "do not share their store directory" in b.log_text()


def test_configuration_differences_are_logged_on_both_sides(pair: FTPair) -> None:
    a = pair.start_active("a")
    b = pair.start_standby("b", queues=">\nonly.on.b\n")
    text = "FT configuration error: this server and its peer"
    assert "differ in destinations (queues, topics, durables)" in b.wait_for_line(text, 5)
    assert "destinations" in a.wait_for_line(text, 5)
    assert "users" not in b.wait_for_line(text, 1)


def test_unshared_state_failover_moves_to_the_next_group(tmp_path: Path) -> None:
    # `+` separates independent servers (EMS.md 1.9): on losing its server the
    # client recreates its sessions, producers and consumers on the next group.
    a = ServerProcess(tmp_path / "a").start()
    b = ServerProcess(tmp_path / "b").start()
    told: list[str] = []
    try:
        async def run() -> tuple[list[str], int]:
            conn = await emsfast.connect(f"{a.url}+{b.url}", reconnect_attempt_count=2,
                                         reconnect_attempt_delay=0.25,
                                         exception_listener=lambda e: told.append(str(e)))
            session = conn.session()
            producer = session.producer(emsfast.Queue("ug"))
            consumer = session.consumer(emsfast.Queue("ug"))
            await producer.send(emsfast.TextMessage("on a"))
            first = await consumer.receive(5)
            assert first is not None
            await asyncio.to_thread(a.kill)
            await asyncio.wait_for(producer.send(emsfast.TextMessage("on b")), 15)
            second = await consumer.receive(5)
            assert second is not None
            await conn.close()
            return [text_of(first), text_of(second)], conn.failovers

        texts, failovers = asyncio.run(run())
        assert texts == ["on a", "on b"] and failovers == 1
        assert len(told) == 1 and "independent server group" in told[0]
    finally:
        a.cleanup()
        b.cleanup()


def test_admin_compare_lists_configuration_differences(tmp_path: Path) -> None:
    a = ServerProcess(tmp_path / "a").start()
    b = ServerProcess(tmp_path / "b", queues=">\nonly.on.b\n").start()
    c = ServerProcess(tmp_path / "c").start()
    try:
        out = admin(a.url, f"compare {b.url}", 1)
        assert f"destinations: differs between {a.url} and {b.url}" in out
        assert "users:" not in out
        out = admin(a.url, f"compare {c.url}")
        assert "No configuration differences" in out
        # The admin tool also takes a `+` list (first reachable group).
        assert "State: active" in admin(f"{a.url}+{c.url}", "show state")
    finally:
        for proc in (a, b, c):
            proc.cleanup()


def test_simultaneous_start_settles_on_one_active(pair: FTPair) -> None:
    # The store lock breaks the tie (EMS.md 1.2).
    a = pair.member("a").start(wait_ready=False)
    b = pair.member("b").start(wait_ready=False)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        logs = {r: p.log_text() for r, p in (("a", a), ("b", b))}
        active = [r for r, t in logs.items() if "Server is active." in t]
        standby = [r for r, t in logs.items() if STANDBY_LINE in t]
        if active and standby:
            break
        time.sleep(0.1)
    assert len(active) == 1 and standby == [pair.peer(active[0])], logs


def test_peer_that_is_not_emsfast_is_named_and_the_lock_decides(
        pair: FTPair, tmp_path: Path) -> None:
    import socket
    import threading

    # Something else listens on the peer's port and answers garbage.
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", pair.ports["b"]))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                peer, _ = listener.accept()
            except OSError:
                return
            peer.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 4)
            peer.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        a = pair.start_active("a")
        assert "does not speak the emsfast protocol" in a.log_text()
    finally:
        listener.close()


def test_takeover_waits_out_a_write_transaction_held_by_a_hung_process(pair: FTPair) -> None:
    # A process stopped inside an LMDB write transaction holds the writer lock: the
    # takeover says so and completes once the transaction ends.
    import subprocess
    import sys

    a = pair.start_active("a")
    b = pair.start_standby("b")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import lmdb, sys, time\n"
        "env = lmdb.open(sys.argv[1], max_dbs=8, subdir=True)\n"
        "txn = env.begin(write=True)\n"
        "print('holding', flush=True)\n"
        "time.sleep(11)\n"
        "txn.abort()\n"), str(pair.store / "async-msgs.db")], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"holding\n"
        os.kill(a.pid, signal.SIGSTOP)
        b.wait_for_line("must run or be killed before this server can take over", 15)
        b.wait_for_line("Server is active.", 10)
    finally:
        os.kill(a.pid, signal.SIGCONT)
        holder.kill()
    assert a.wait(10) == 3
