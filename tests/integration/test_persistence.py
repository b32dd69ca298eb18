"""Persistence against real daemons (issue 4 item 7): kill -9 at random points,
restart on the same store directory, and check that nothing confirmed is lost and
nothing committed comes back; corruption, a second daemon, bad directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import emsfast
from emsfast._testbase.clientutil import connection, receive_until, text_of
from emsfast._testbase.server_process import ServerProcess
from emsfast.errors import EmsfastError
from emsfast.store.lmdb_store import MARK_DELAY

pytestmark = pytest.mark.timeout(90)

SEED = int(os.environ.get("EMSFAST_CRASH_SEED", "4"))
QUEUES = "crash.sync store=$sys.failsafe\ncrash.async\n>\n"
CLIENT_ERRORS = (EmsfastError, ConnectionError, OSError, asyncio.TimeoutError)


class Ledger:
    """What the clients saw, across every crash of the daemon."""

    def __init__(self) -> None:
        self.confirmed: set[str] = set()
        self.committed: list[str] = []          # every body whose commit returned
        self.in_doubt: set[str] = set()         # commit interrupted by the kill
        self.seen_uncommitted: dict[str, float] = {}   # body -> when received
        self.next_seq = 0
        self.kills: list[float] = []


async def _produce(url: str, queue: str, ledger: Ledger, stop: asyncio.Event) -> None:
    async with connection(url) as conn:
        producer = conn.session().producer(emsfast.Queue(queue), window=200)
        pending: list[Any] = []
        while not stop.is_set():
            ledger.next_seq += 1
            body = f"{queue}:{ledger.next_seq}"
            fut = await producer.send_async(emsfast.TextMessage(body))
            fut_body = body
            pending.append((fut, fut_body))
            if len(pending) >= 50:
                for f, b in pending:
                    await f
                    ledger.confirmed.add(b)
                pending = []
        for f, b in pending:
            await f
            ledger.confirmed.add(b)


async def _consume(url: str, queue: str, ledger: Ledger, rng: random.Random,
                   stop: asyncio.Event) -> None:
    async with connection(url) as conn:
        session = conn.session(transacted=True)
        consumer = session.consumer(emsfast.Queue(queue))
        while not stop.is_set():
            batch: list[str] = []
            for _ in range(rng.randint(1, 40)):
                msg = await consumer.receive(0.2)
                if msg is None:
                    break
                body = text_of(msg)
                batch.append(body)
                ledger.seen_uncommitted[body] = time.monotonic()
            if not batch:
                continue
            try:
                await session.commit()
            except CLIENT_ERRORS:
                ledger.in_doubt.update(batch)
                raise
            ledger.committed.extend(batch)
            for body in batch:
                ledger.seen_uncommitted.pop(body, None)


async def _traffic(srv: ServerProcess, ledger: Ledger, rng: random.Random) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(coro) for coro in (
        _produce(srv.url, "crash.sync", ledger, stop),
        _produce(srv.url, "crash.async", ledger, stop),
        _consume(srv.url, "crash.sync", ledger, rng, stop),
        _consume(srv.url, "crash.async", ledger, rng, stop))]
    await asyncio.sleep(rng.uniform(0.3, 1.5))
    srv.kill()                      # SIGKILL mid-traffic: sends, acks and commits in flight
    ledger.kills.append(time.monotonic())
    stop.set()
    done, _ = await asyncio.wait(tasks, timeout=20)
    assert len(done) == len(tasks), "clients hung after the daemon died"
    for task in done:
        if task.exception() is not None and not isinstance(task.exception(), CLIENT_ERRORS):
            raise task.exception()  # type: ignore[misc]


async def _drain(url: str, queue: str) -> list[Any]:
    async with connection(url) as conn:
        session = conn.session()
        await session.producer(emsfast.Queue(queue)).send(emsfast.TextMessage("__end__"))
        got = await receive_until(session.consumer(emsfast.Queue(queue)), "__end__", timeout=30)
        return got[:-1]


def _quiet(loop: asyncio.AbstractEventLoop, ctx: dict[str, Any]) -> None:
    # Client futures failing because the daemon was killed are expected here.
    pass


def test_kill_9_loses_nothing_confirmed_and_never_repeats_a_commit(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    ledger = Ledger()
    srv = ServerProcess(tmp_path / "d", queues=QUEUES)
    try:
        for _ in range(3):
            srv.proc = None
            srv.start()
            with asyncio.Runner() as runner:
                runner.get_loop().set_exception_handler(_quiet)
                runner.run(_traffic(srv, ledger, rng))
        srv.proc = None
        srv.start()
        assert "Recovered " in srv.log_text()
        with asyncio.Runner() as runner:
            rest = runner.run(_drain(srv.url, "crash.sync"))
            rest += runner.run(_drain(srv.url, "crash.async"))
    finally:
        srv.cleanup()
    after = [text_of(m) for m in rest]
    committed = ledger.committed
    info = f"seed {SEED}: {len(ledger.confirmed)} confirmed, {len(committed)} committed"
    assert len(ledger.confirmed) > 100, info
    assert len(committed) == len(set(committed)), f"a commit repeated ({info})"
    assert not set(committed) & set(after), f"a committed message came back ({info})"
    assert len(after) == len(set(after)), info
    lost = ledger.confirmed - set(committed) - set(after) - ledger.in_doubt
    assert not lost, f"confirmed messages lost: {sorted(lost)[:10]} ({info})"
    # Received (not committed) long enough before a kill for the delivery mark to
    # be written (MARK_DELAY): it must come back flagged redelivered.
    for msg in rest:
        body = text_of(msg)
        seen = ledger.seen_uncommitted.get(body)
        if seen is None or body in ledger.in_doubt:
            continue
        kill = min((k for k in ledger.kills if k >= seen), default=seen)
        if kill - seen > 2 * MARK_DELAY:
            assert msg.redelivered, f"{body} came back without JMSRedelivered ({info})"


def _durable_roundtrip_conf(workdir: Path) -> dict[str, str]:
    (workdir / "durables.conf").write_text('crash.t.static  keeper  clientid=C2\n')
    return {"durables": str(workdir / "durables.conf")}


async def _durable_send(url: str) -> None:
    async with connection(url, client_id="C1") as conn:
        sub = conn.session().consumer(emsfast.Topic("crash.t"), durable="D1")
        await sub.receive(0)           # creates it on the server
        await sub.close()
    async with connection(url) as conn:
        session = conn.session()
        await session.producer(emsfast.Topic("crash.t")).send(emsfast.TextMessage("kept"))
        await session.producer(emsfast.Topic("crash.t.static")).send(
            emsfast.TextMessage("static"))


async def _durable_receive(url: str) -> tuple[str, str]:
    async with connection(url, client_id="C1") as conn:
        msg = await conn.session().consumer(emsfast.Topic("crash.t"), durable="D1").receive(10)
    async with connection(url, client_id="C2") as conn:
        static = await conn.session().consumer(
            emsfast.Topic("crash.t.static"), durable="keeper").receive(10)
    assert msg is not None and static is not None
    return text_of(msg), text_of(static)


def test_durables_and_their_messages_survive_a_kill(tmp_path: Path) -> None:
    workdir = tmp_path / "d"
    workdir.mkdir()
    srv = ServerProcess(workdir, params=_durable_roundtrip_conf(workdir))
    try:
        srv.start()
        asyncio.run(_durable_send(srv.url))
        srv.kill()
        srv.proc = None
        srv.start()
        assert "Recovered 2 messages in 2 destinations" in srv.log_text()
        assert asyncio.run(_durable_receive(srv.url)) == ("kept", "static")
    finally:
        srv.cleanup()


async def _send(url: str, queue: str, texts: list[str]) -> None:
    async with connection(url) as conn:
        producer = conn.session().producer(emsfast.Queue(queue))
        for text in texts:
            await producer.send(emsfast.TextMessage(text))


def test_flipped_bytes_in_a_record_are_detected(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "d", queues=QUEUES)
    try:
        srv.start()
        asyncio.run(_send(srv.url, "crash.sync", ["ok-one", "CORRUPT-ME-PLEASE", "ok-two"]))
        assert srv.stop() == 0
        data = tmp_path / "d" / "datastore" / "sync-msgs.db" / "data.mdb"
        raw = bytearray(data.read_bytes())
        # Copy-on-write leaves stale copies in free pages: flip every one.
        at = raw.find(b"CORRUPT-ME-PLEASE")
        assert at > 0
        while at > 0:
            raw[at + 3] ^= 0x20
            at = raw.find(b"CORRUPT-ME-PLEASE", at + 1)
        data.write_bytes(bytes(raw))
        srv.proc = None
        srv.start(wait_ready=False)
        assert srv.wait() == 2
        log = srv.log_text()
        assert "store '$sys.failsafe': corrupt record at key q:crash.sync/2: CRC mismatch" in log
        assert "Server is active." not in log
    finally:
        srv.cleanup()


def test_told_to_skip_it_recovers_the_other_messages(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "d", queues=QUEUES)
    try:
        srv.start()
        asyncio.run(_send(srv.url, "crash.sync", ["ok-one", "CORRUPT-ME-PLEASE", "ok-two"]))
        assert srv.stop() == 0
        data = tmp_path / "d" / "datastore" / "sync-msgs.db" / "data.mdb"
        raw = bytearray(data.read_bytes())
        at = raw.find(b"CORRUPT-ME-PLEASE")
        while at > 0:
            raw[at + 3] ^= 0x20
            at = raw.find(b"CORRUPT-ME-PLEASE", at + 1)
        data.write_bytes(bytes(raw))
        corrupted = data.read_bytes()
        srv.proc = None
        srv.args = ["-skip_corrupt_records"]
        srv.start()
        log = srv.log_text()
        assert ("store '$sys.failsafe': corrupt record at key q:crash.sync/2: CRC mismatch"
                in log)
        assert "record skipped" in log
        got = asyncio.run(_drain(srv.url, "crash.sync"))
        assert sorted(m.text for m in got) == ["ok-one", "ok-two"]
        assert srv.stop() == 0
        # Skipping never rewrites the bad record: it is still there to inspect.
        assert b"CORrUPT-ME-PLEASE" in corrupted
        assert b"CORrUPT-ME-PLEASE" in data.read_bytes()
    finally:
        srv.cleanup()


def test_second_daemon_on_the_same_store_is_refused(tmp_path: Path) -> None:
    first = ServerProcess(tmp_path / "a")
    second = ServerProcess(tmp_path / "b", params={"store": str(tmp_path / "a" / "datastore")})
    try:
        first.start()
        second.start(wait_ready=False)
        assert second.wait() == 3
        assert "is locked by another server (pid" in second.log_text()
        assert first.is_running()
    finally:
        first.cleanup()
        second.cleanup()


def test_store_dir_not_writable(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:
        # Permission bits do not stop root; a read-only mount does.
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs",
                                  str(ro)], capture_output=True)
        if mounted.returncode != 0:
            pytest.skip("root ignores permission bits and cannot mount a read-only tmpfs")
    else:
        ro.chmod(0o500)
    srv = ServerProcess(tmp_path / "d", params={"store": str(ro)})
    try:
        srv.start(wait_ready=False)
        assert srv.wait() == 2
        assert f"store directory '{ro}' is not writable" in srv.log_text()
    finally:
        srv.cleanup()
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(ro)], capture_output=True)
        else:
            ro.chmod(0o700)


def test_epoch_moved_by_another_server_exits_3(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "d", queues=QUEUES)
    try:
        srv.start()
        script = (
            "import lmdb, sys; from emsfast._core import storeenc as s\n"
            "env = lmdb.open(sys.argv[1], max_dbs=8, subdir=True)\n"
            "with env.begin(write=True) as t:\n"
            "    db = env.open_db(b'info', txn=t)\n"
            "    t.put(b'epoch', s.encode_record(s.EPOCH, b'epoch', (77).to_bytes(8, 'big')),"
            " db=db)\n")
        meta = tmp_path / "d" / "datastore" / "meta.db"
        subprocess.run([sys.executable, "-c", script, str(meta)], check=True)
        with contextlib.suppress(*CLIENT_ERRORS):
            asyncio.run(_send(srv.url, "crash.sync", ["after the takeover"]))
        assert srv.wait(20) == 3
        assert "fenced: epoch is 77" in srv.log_text()
    finally:
        srv.cleanup()


def test_static_destination_on_unknown_store_stops_the_start(tmp_path: Path) -> None:
    srv = ServerProcess(tmp_path / "d", queues=">\norders  store=nowhere\n")
    try:
        srv.start(wait_ready=False)
        assert srv.wait() == 1
        assert "queues.conf:2: store: store 'nowhere' is not defined in" in srv.log_text()
    finally:
        srv.cleanup()


async def _create_producer(url: str, queue: str) -> str:
    async with connection(url) as conn:
        try:
            await conn.session().producer(emsfast.Queue(queue)).send(emsfast.TextMessage("x"))
        except EmsfastError as exc:
            return str(exc)
    return "no error"


def test_dynamic_destination_on_unknown_store_is_refused_to_the_client(tmp_path: Path) -> None:
    workdir = tmp_path / "d"
    workdir.mkdir()
    (workdir / "stores.conf").write_text("[audit]\n  file=audit.db\n  mode=sync\n")
    srv = ServerProcess(workdir, queues="ok.> store=audit\nbad.> store=nowhere\n",
                        params={"stores": str(workdir / "stores.conf")})
    try:
        srv.start()
        assert asyncio.run(_create_producer(srv.url, "ok.1")) == "no error"
        assert (workdir / "datastore" / "audit.db" / "data.mdb").exists()
        text = asyncio.run(_create_producer(srv.url, "bad.1"))
        assert "uses store 'nowhere', which is not defined in stores.conf" in text
    finally:
        srv.cleanup()


async def _fill_until_refused(url: str) -> tuple[int, str]:
    async with connection(url) as conn:
        producer = conn.session().producer(emsfast.Queue("crash.sync"))
        for i in range(1000):
            try:
                await producer.send(emsfast.BytesMessage(bytes([i % 251]) * 60_000))
            except EmsfastError as exc:
                return i, str(exc)
    return 1000, "never refused"


async def _still_serving(url: str, stored: int) -> int:
    async with connection(url) as conn:
        session = conn.session()
        # Non-persistent traffic and reads of what was stored keep working.
        await session.producer(emsfast.Queue("crash.async")).send(
            emsfast.TextMessage("np"), delivery_mode="non_persistent")
        got = await session.consumer(emsfast.Queue("crash.async")).receive(10)
        assert got is not None and text_of(got) == "np"
        consumer = session.consumer(emsfast.Queue("crash.sync"))
        n = 0
        while n < stored and await consumer.receive(5) is not None:
            n += 1
        return n


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs (root only), unmounted afterwards."""
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield small
    subprocess.run(["umount", "-l", str(small)], capture_output=True)


def test_disk_full_fails_the_send_and_the_server_keeps_serving(tmp_path: Path,
                                                               small: Path) -> None:
    srv = ServerProcess(tmp_path / "d", queues=QUEUES, params={"store": str(small / "ds")})
    try:
        srv.start()
        stored, text = asyncio.run(_fill_until_refused(srv.url))
        assert 0 < stored < 1000, text
        assert "store failed" in text and "disk full" in text, text
        assert "ERROR: Store '$sys.failsafe': write failed" in srv.log_text()
        assert srv.is_running()
        assert asyncio.run(_still_serving(srv.url, stored)) == stored
        # The drained messages' pages are free inside the file: sends work again.
        asyncio.run(_send(srv.url, "crash.sync", ["after the drain"]))
    finally:
        srv.cleanup()


def test_resend_is_answered_by_its_original_commit_not_confirmed_before_it(
        tmp_path: Path, small: Path) -> None:
    """A resend (same client token, producer and seq) that arrives while the original
    is still on its way to the store must get the original's outcome: here the disk
    is full, so both get SEND_FAIL; before, the resend was confirmed at once and the
    client was told a message was stored that never was."""
    from emsfast import consts
    from emsfast._core.framing import parse_send_fail
    from emsfast._testbase.rawwire import RawConnection, control, publish, text_blob

    srv = ServerProcess(tmp_path / "d", queues=QUEUES, params={"store": str(small / "ds")})
    try:
        srv.start()
        with open(small / "filler", "wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
        with RawConnection("127.0.0.1", srv.port) as raw:
            raw.send(control(consts.FRAME_HELLO, {
                "magic": consts.HELLO_MAGIC, "proto": consts.PROTOCOL_VERSION,
                "user": None, "password": None, "client_id": None, "lang": "raw",
                "version": "0", "client_token": "resend-test"}))
            assert raw.read_frame() is not None
            raw.request("session.create", session=1, ack_mode=consts.ACK_AUTO)
            raw.request("producer.create", session=1, producer=1, dest_type="queue",
                        dest="crash.sync")
            one = publish(1, 1, text_blob("x" * 100_000, "q:crash.sync"))
            raw.send(one + one)         # the original and its resend in one write
            answers = []
            while len(answers) < 2:
                f = raw.read_frame(20)
                assert f is not None, answers
                if f[0] == consts.FRAME_CONFIRM:
                    answers.append("CONFIRM")
                elif f[0] == consts.FRAME_SEND_FAIL:
                    answers.append(parse_send_fail(f[2])[3])
        assert "CONFIRM" not in answers, answers
        assert all("store failed" in a for a in answers), answers
    finally:
        srv.cleanup()
