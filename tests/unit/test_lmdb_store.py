"""LMDB-only behaviour: restarts, fencing, refusal of bad store directories,
corruption, a full map. Real LMDB files under tmp dirs; no mocks."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb
import pytest

from emsfast._core import storeenc
from emsfast.errors import FencedError, StoreError, StoreLockedError
from emsfast.ft.lock import FileStoreLock
from emsfast.store.lmdb_store import LmdbStore


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def B(text: bytes) -> bytes:
    """A valid message blob carrying ``text`` (stores index the message header)."""
    import emsfast
    from emsfast.consts import PERSISTENT

    return bytes(emsfast.BytesMessage(text).encode(PERSISTENT, 4, 0, 0, emsfast.Queue("q")))


def wait(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None]) -> None:
    loop.run_until_complete(asyncio.wait_for(fut, 10))


def test_restart_keeps_messages_epoch_and_ids(tmp_path: Path,
                                              loop: asyncio.AbstractEventLoop) -> None:
    s = LmdbStore(str(tmp_path))
    s.open(loop)
    assert s.epoch == 1
    s.put_message("$sys.failsafe", "q:a", 5, B(b"five"))
    wait(loop, s.put_message("$sys.nonfailsafe", "q:b", 9, B(b"nine")))
    wait(loop, s.remove_message("q:b", 9))
    s.close()
    s = LmdbStore(str(tmp_path))
    s.open(loop)
    state = s.recover()
    assert s.epoch == 2
    assert [(m.holder, m.message_id) for m in state.messages] == [("q:a", 5)]
    assert s.load_blob("q:a", 5) == B(b"five")
    assert state.max_message_id == 9          # ids never repeat after a restart
    s.close()


def test_second_opener_is_refused_and_changes_nothing(
        tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    other = FileStoreLock(str(tmp_path))
    assert other.try_acquire()
    try:
        with pytest.raises(StoreLockedError, match="locked by another server"):
            LmdbStore(str(tmp_path)).open(loop)
        assert not (tmp_path / "meta.db").exists()
    finally:
        other.release()


def test_network_file_system_is_refused(tmp_path: Path,
                                        loop: asyncio.AbstractEventLoop) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nsrv:/x {tmp_path} nfs4 rw 0 0\n")
    with pytest.raises(StoreError, match="network file system \\(nfs4\\)"):
        LmdbStore(str(tmp_path / "ds"), mounts=str(mounts)).open(loop)
    assert not (tmp_path / "ds").exists()


def _raw_put(path: Path, db: bytes, key: bytes, value: bytes) -> None:
    env = lmdb.open(str(path), max_dbs=8, subdir=True)
    with env.begin(write=True) as txn:
        txn.put(key, value, db=env.open_db(db, txn=txn))
    env.close()


def test_newer_format_is_refused_without_changes(tmp_path: Path,
                                                 loop: asyncio.AbstractEventLoop) -> None:
    s = LmdbStore(str(tmp_path))
    s.open(loop)
    s.close()
    rec = bytearray(storeenc.encode_record(storeenc.FORMAT, b"format", b"\x02"))
    rec[0] = storeenc.FORMAT_VERSION + 1
    _raw_put(tmp_path / "sync-msgs.db", b"info", b"format", bytes(rec))
    with pytest.raises(StoreError, match="sync-msgs.db.*format version 2"):
        LmdbStore(str(tmp_path)).open(loop)
    lock = FileStoreLock(str(tmp_path))
    assert lock.try_acquire()               # the refused opener let go of the lock
    lock.release()


def test_corrupt_record_names_store_and_key(tmp_path: Path,
                                            loop: asyncio.AbstractEventLoop) -> None:
    s = LmdbStore(str(tmp_path))
    s.open(loop)
    wait(loop, s.put_message("$sys.failsafe", "q:orders", 42, B(b"payload")))
    s.close()
    key = storeenc.message_key("q:orders", 42)
    rec = bytearray(storeenc.encode_record(storeenc.MESSAGE, key, B(b"payload")))
    rec[-1] ^= 0xFF
    _raw_put(tmp_path / "sync-msgs.db", b"msgs", key, bytes(rec))
    s = LmdbStore(str(tmp_path))
    s.open(loop)
    with pytest.raises(StoreError, match=r"store '\$sys.failsafe'.*q:orders/42.*CRC"):
        list(s.recover().messages)
    s.close()


def test_epoch_moved_by_another_server_fences(tmp_path: Path,
                                              loop: asyncio.AbstractEventLoop) -> None:
    fenced: list[str] = []
    s = LmdbStore(str(tmp_path), on_fenced=fenced.append)
    s.open(loop)
    wait(loop, s.put_message("$sys.failsafe", "q:a", 1, B(b"x")))
    # Another process bumps the epoch as an activating peer would.
    script = (
        "import lmdb, sys; from emsfast._core import storeenc as s\n"
        "env = lmdb.open(sys.argv[1], max_dbs=8, subdir=True)\n"
        "with env.begin(write=True) as t:\n"
        "    db = env.open_db(b'info', txn=t)\n"
        "    t.put(b'epoch', s.encode_record(s.EPOCH, b'epoch', (99).to_bytes(8, 'big')), db=db)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "meta.db")], check=True)
    for store in ("$sys.failsafe", "$sys.meta"):
        with pytest.raises(FencedError, match="fenced: epoch is 99"):
            wait(loop, s.put_message(store, "q:a", 2, B(b"y")))
    loop.run_until_complete(asyncio.sleep(0.01))
    assert fenced and "another server owns the store" in fenced[0]
    s.close()


def test_full_map_grows_then_fails_cleanly_at_its_limit(
        tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    mib = 1 << 20
    s = LmdbStore(str(tmp_path), map_size=mib, max_map_size=4 * mib)
    s.open(loop)
    blob = b"x" * 100_000
    for i in range(1, 21):                   # 2 MB: needs one growth
        wait(loop, s.put_message("$sys.failsafe", "q:a", i, B(blob)))
    with pytest.raises(StoreError, match="is full"):
        for i in range(21, 80):
            wait(loop, s.put_message("$sys.failsafe", "q:a", i, B(blob)))
    # Still serving: removals and small writes go through.
    wait(loop, s.remove_holder("q:a"))
    wait(loop, s.put_message("$sys.failsafe", "q:b", 100, B(b"small")))
    assert [m.message_id for m in s.recover().messages] == [100]
    s.close()


def test_recovered_messages_keep_only_an_index_and_load_bodies(
        tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    import emsfast
    from emsfast.config.destinations import DestinationTable
    from emsfast.consts import PERSISTENT
    from emsfast.server.broker import Broker

    blob = bytes(emsfast.TextMessage("hello", properties={"n": 7}).encode(
        PERSISTENT, 6, 123, 0, emsfast.Queue("orders")))
    s = LmdbStore(str(tmp_path))
    s.open(loop)
    wait(loop, s.put_message("$sys.failsafe", "q:orders", 11, blob))
    s.close()
    s = LmdbStore(str(tmp_path))
    s.open(loop)
    table = DestinationTable("queue", "q.conf", [])
    broker = Broker("S", s, table, DestinationTable("topic", "t.conf", []))
    broker.queue_table = broker.topic_table = _allow_all()
    assert broker.recover(s.recover()) == 1
    (msg,) = broker.queues["orders"].iter_ready()
    assert msg.stored
    assert (msg.priority, msg.timestamp, msg.size) == (6, 123, len(blob))
    assert msg.blob == blob and msg.field_getter("S")("n") == 7
    loaded = msg.loaded()
    assert loaded.blob == blob and not loaded.stored
    s.close()


def _allow_all() -> Any:
    from emsfast.config.destinations import DestinationProps

    class AllowAll:
        def resolve(self, name: str) -> DestinationProps:
            return DestinationProps()

    return AllowAll()


def test_messages_of_a_vanished_durable_are_dropped_at_recovery(
        tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    from emsfast.config.destinations import DestinationTable
    from emsfast.server.broker import Broker

    s = LmdbStore(str(tmp_path))
    s.open(loop)
    wait(loop, s.put_message("$sys.nonfailsafe", "d:c:gone", 4, B(b"orphan")))
    s.close()
    s = LmdbStore(str(tmp_path))
    s.open(loop)
    broker = Broker("S", s, DestinationTable("queue", "q", []), DestinationTable("topic", "t", []))
    assert broker.recover(s.recover()) == 0
    wait(loop, s.flush())
    s.close()
    s = LmdbStore(str(tmp_path))
    s.open(loop)
    assert list(s.recover().messages) == []
    s.close()


def test_steal_opens_a_store_whose_flock_a_hung_owner_holds(
        tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    # A hung FT active keeps its flock; the standby opens with steal=True and
    # bumps the epoch, which fences the old owner (see the test above).
    s = LmdbStore(str(tmp_path))
    s.open(loop)
    wait(loop, s.put_message("$sys.failsafe", "q:a", 1, B(b"x")))
    first = s.epoch
    s.close()
    hung = FileStoreLock(str(tmp_path))
    assert hung.try_acquire()
    s = LmdbStore(str(tmp_path))
    with pytest.raises(StoreLockedError):
        s.open(loop)
    s.open(loop, steal=True)
    assert s.stolen and s.epoch == first + 1 and not s.lock.held
    assert [m.message_id for m in s.recover().messages] == [1]
    assert s.check_epoch()
    s.close()
    hung.release()


def test_idle_owner_learns_it_was_fenced(tmp_path: Path,
                                         loop: asyncio.AbstractEventLoop) -> None:
    fenced: list[str] = []
    s = LmdbStore(str(tmp_path), on_fenced=fenced.append)
    s.open(loop)
    assert s.check_epoch()
    script = (
        "import lmdb, sys; from emsfast._core import storeenc as s\n"
        "env = lmdb.open(sys.argv[1], max_dbs=8, subdir=True)\n"
        "with env.begin(write=True) as t:\n"
        "    db = env.open_db(b'info', txn=t)\n"
        "    t.put(b'epoch', s.encode_record(s.EPOCH, b'epoch', (99).to_bytes(8, 'big')), db=db)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "meta.db")], check=True)
    assert not s.check_epoch()
    assert fenced and "epoch is 99" in fenced[0]
    s.close()


def test_send_records_are_recovered_and_forgotten(tmp_path: Path,
                                                  loop: asyncio.AbstractEventLoop) -> None:
    s = LmdbStore(str(tmp_path))
    s.open(loop)
    s.put_message("$sys.failsafe", "q:a", 1, B(b"x"))
    s.note_send("$sys.failsafe", b"tok1\x00\x00\x00\x00\x01", 7)
    s.put_message("$sys.nonfailsafe", "q:b", 2, B(b"y"))
    s.note_send("$sys.nonfailsafe", b"tok1\x00\x00\x00\x00\x01", 9)
    wait(loop, s.put_message("$sys.nonfailsafe", "q:b", 3, B(b"z")))
    s.note_send("$sys.nonfailsafe", b"tok2\x00\x00\x00\x00\x01", 1)
    wait(loop, s.flush())
    s.close()
    s = LmdbStore(str(tmp_path))
    s.open(loop)
    sends = s.recover().sends
    assert sends == {b"tok1\x00\x00\x00\x00\x01": 9, b"tok2\x00\x00\x00\x00\x01": 1}
    s.forget_sends(b"tok1\x00")
    wait(loop, s.flush())
    s.close()
    s = LmdbStore(str(tmp_path))
    s.open(loop)
    assert s.recover().sends == {b"tok2\x00\x00\x00\x00\x01": 1}
    s.close()
