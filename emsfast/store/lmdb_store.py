"""``LmdbStore``: persistent messages, durables and metadata in LMDB (DESIGN.md §5).

Layout under the ``store`` directory: one LMDB environment (a directory holding
``data.mdb``/``lock.mdb``) per store of stores.conf, plus ``emsfast.lock``. Every
environment has the sub-databases ``msgs`` (holder NUL id -> message record),
``counts`` (same key -> delivery count) and ``info`` (format version, highest
message id); ``$sys.meta`` also holds ``durables``, ``dests`` and the fencing
``epoch``. Every value is a storeenc record with a CRC32C.

Crash reasoning: each write reaches LMDB inside one transaction of its batch, and
its future (the producer's confirmation) resolves only after that commit returned
(after the fsync for ``mode=sync``). A kill at any point leaves the last
committed transaction; nothing is confirmed that is not in it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import lmdb
import msgpack

from emsfast._core import storeenc
from emsfast._core.storeenc import message_key, message_record
from emsfast.config.stores import META, StoreConfig, default_stores
from emsfast.errors import FencedError, StoreError, StoreLockedError
from emsfast.ft.lock import FileStoreLock, StoreLock
from emsfast.store.base import DurableRecord, RecoveredState, StoredMessage
from emsfast.store.writer import DEL, DELPREFIX, PUT, Batch, EnvWriter

NETWORK_FS = frozenset({"nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "9p"})
_MIB = 1 << 20
_DEFAULT_MAP = 256 * _MIB
# Sparse on 64-bit systems; the disk, not the map, is the real limit.
_DEFAULT_MAX_MAP = 1 << 40
_SCAN_CHUNK = 65_536
# Delivery marks wait this long: most messages are acknowledged sooner and then
# never cost a write. A crash inside the window loses only the JMSRedelivered flag.
MARK_DELAY = 0.2


@dataclass(eq=False)
class _Env:
    cfg: StoreConfig
    env: lmdb.Environment
    dbs: dict[str, Any]
    writer: EnvWriter | None = None
    batch: Batch | None = None
    max_id: int = 0                 # highest id handed to the writer
    stored_max_id: int = 0          # the maxid record as found at open
    holders: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.msgs = self.dbs["msgs"]      # the hot path's database handle


def filesystem_type(path: str, mounts: str = "/proc/mounts") -> str:
    """The type of the file system holding ``path`` ('' if unknown)."""
    real = os.path.realpath(path)
    best, kind = "", ""
    try:
        with open(mounts) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                inside = real == mnt or real.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best):
                    best, kind = mnt, parts[2]
    except OSError:
        return ""
    return kind


def _link(futs: list[asyncio.Future[None]], out: asyncio.Future[None],
          after: asyncio.Future[None] | None) -> None:
    """Resolve ``out`` once all ``futs`` have, and ``after`` (the previous turn) has
    finished either way; fail it with the first error of ``futs``.

    Environments commit independently; waiting for the previous turn keeps writes
    ordered across them (a message confirmed after its durable's record was written).
    """
    waits = list(futs)
    if after is not None and not after.done():
        waits.append(after)
    left = [len(waits)]
    if not waits:
        out.set_result(None)

    def done(f: asyncio.Future[None]) -> None:
        left[0] -= 1
        if out.done():
            return
        err: BaseException | None = None
        if f is not after:
            err = StoreError("store write cancelled") if f.cancelled() else f.exception()
        if err is not None:
            out.set_exception(err)
        elif left[0] == 0:
            out.set_result(None)

    for f in waits:
        f.add_done_callback(done)


def _retrieve(f: asyncio.Future[None]) -> None:
    if not f.cancelled():
        f.exception()


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


class LmdbStore:
    def __init__(self, store_dir: str, stores: dict[str, StoreConfig] | None = None, *,
                 lock: StoreLock | None = None, on_fenced: Callable[[str], None] | None = None,
                 sync_interval: float = 1.0, map_size: int = _DEFAULT_MAP,
                 max_map_size: int = _DEFAULT_MAX_MAP, mounts: str = "/proc/mounts") -> None:
        self.dir = os.path.abspath(store_dir)
        self._configs = stores if stores is not None else default_stores(self.dir)
        if META not in self._configs:
            raise StoreError(f"no '{META}' store configured")
        self._lock = lock if lock is not None else FileStoreLock(self.dir)
        self._on_fenced = on_fenced
        self._sync_interval = sync_interval
        self._map_size = map_size
        self._max_map_size = max_map_size
        self._mounts = mounts
        self._envs: dict[str, _Env] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        # All writes of one loop turn share this future, across environments: it
        # resolves when every environment committed its part (as MemoryStore's).
        self._turn: asyncio.Future[None] | None = None
        self._last_turn: asyncio.Future[None] | None = None
        self._holder_envs: dict[str, list[_Env]] = {}
        self._counted: set[tuple[str, int]] = set()
        self._marks: dict[tuple[str, int], float] = {}
        self._mark_timer: asyncio.TimerHandle | None = None
        self.epoch = 0
        self.fenced: str | None = None

    # -- opening ---------------------------------------------------------------

    def _check_dir(self) -> None:
        kind = filesystem_type(self.dir if os.path.exists(self.dir)
                               else os.path.dirname(self.dir), self._mounts)
        if kind in NETWORK_FS:
            raise StoreError(f"store directory '{self.dir}' is on a network file system "
                             f"({kind}); LMDB needs local or block storage, NFS/SMB is "
                             "not supported")
        try:
            os.makedirs(self.dir, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"store directory '{self.dir}' cannot be created: "
                             f"{exc.strerror}") from None
        if not os.access(self.dir, os.W_OK | os.X_OK):
            raise StoreError(f"store directory '{self.dir}' is not writable")

    def _open_env(self, cfg: StoreConfig) -> _Env:
        try:
            os.makedirs(cfg.path, exist_ok=True)
            # Never writemap: with it a full disk is SIGBUS instead of an error.
            env = lmdb.open(cfg.path, map_size=self._map_size, max_dbs=8, subdir=True,
                            sync=cfg.sync, metasync=cfg.sync, writemap=False,
                            map_async=False, readahead=False)
            dbs = {name: env.open_db(name.encode())
                   for name in ("msgs", "counts", "info", "durables", "dests")}
        except (lmdb.Error, OSError) as exc:
            raise StoreError(f"store '{cfg.name}' at '{cfg.path}' cannot be opened: "
                             f"{exc}") from None
        return _Env(cfg, env, dbs)

    def _check_format(self, e: _Env) -> bool:
        """True when the environment already carries our format record."""
        with e.env.begin() as txn:
            raw = txn.get(b"format", db=e.dbs["info"])
            if raw is None:
                return False
            try:
                storeenc.decode_record(e.cfg.name, b"format", raw, storeenc.FORMAT)
            except StoreError as exc:
                raise StoreError(f"store '{e.cfg.name}' at '{e.cfg.path}': {exc}") from None
            maxid = txn.get(b"maxid", db=e.dbs["info"])
            if maxid is not None:
                e.max_id = e.stored_max_id = int.from_bytes(
                    storeenc.decode_record(e.cfg.name, b"maxid", maxid)[1], "big")
        return True

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._check_dir()
        if not self._lock.try_acquire():
            raise StoreLockedError(f"store directory '{self.dir}' is locked by another "
                                   f"server ({self._lock.owner()}); not opened")
        try:
            for name, cfg in self._configs.items():
                self._envs[name] = self._open_env(cfg)
            # Read-only checks first: a store we refuse is left as it was.
            fresh = [e for e in self._envs.values() if not self._check_format(e)]
            self._bump_epoch()
            for e in fresh:
                key = b"format"
                with e.env.begin(write=True) as txn:
                    txn.put(key, storeenc.encode_record(storeenc.FORMAT, key, b"\x01"),
                            db=e.dbs["info"])
        except BaseException:
            self._close_envs()
            self._lock.release()
            raise

    def _writer(self, e: _Env) -> EnvWriter:
        # Started on the first write, so recovery can remap an environment first.
        if e.writer is None:
            assert self._loop is not None
            e.writer = EnvWriter(
                e.cfg.name, e.env, self._loop, self._epoch_checker(e), self._committed(e),
                self._fence, sync_interval=None if e.cfg.sync else self._sync_interval,
                max_map_size=self._max_map_size)
            e.writer.start()
        return e.writer

    def _remap(self, e: _Env) -> None:
        """Close and reopen ``e``: the pages recovery read leave the process's RSS
        (they stay in the page cache). Only before its writer exists."""
        e.env.close()
        fresh = self._open_env(e.cfg)
        e.env, e.dbs, e.msgs = fresh.env, fresh.dbs, fresh.msgs

    def _bump_epoch(self) -> None:
        meta = self._envs[META]
        with meta.env.begin(write=True) as txn:
            raw = txn.get(b"epoch", db=meta.dbs["info"])
            old = 0 if raw is None else int.from_bytes(
                storeenc.decode_record(META, b"epoch", raw, storeenc.EPOCH)[1], "big")
            self.epoch = old + 1
            txn.put(b"epoch", storeenc.encode_record(storeenc.EPOCH, b"epoch",
                                                     _u64(self.epoch)), db=meta.dbs["info"])
        # The epoch must outlive a host crash even on an async meta store.
        meta.env.sync(True)

    def _stored_epoch(self, txn: lmdb.Transaction) -> int:
        raw = txn.get(b"epoch", db=self._envs[META].dbs["info"])
        if raw is None:
            return 0
        return int.from_bytes(storeenc.decode_record(META, b"epoch", raw)[1], "big")

    def _epoch_checker(self, e: _Env) -> Callable[[lmdb.Transaction], None]:
        meta = self._envs[META]

        def check(txn: lmdb.Transaction) -> None:
            if e is meta:
                stored = self._stored_epoch(txn)
            else:
                with meta.env.begin() as rtxn:
                    stored = self._stored_epoch(rtxn)
            if stored != self.epoch:
                raise FencedError(f"store '{e.cfg.name}' is fenced: epoch is {stored} in "
                                  f"'{meta.cfg.path}', this server opened it at "
                                  f"{self.epoch}; another server owns the store")

        return check

    def _committed(self, e: _Env) -> Callable[[lmdb.Transaction, list[Batch]], None]:
        info = e.dbs["info"]
        written = [e.stored_max_id]     # this closure runs on the writer thread only

        def on_commit(txn: lmdb.Transaction, batches: list[Batch]) -> None:
            # One extra put per commit keeps message ids unique across restarts.
            top = max(b.max_id for b in batches)
            if top > written[0]:
                txn.put(b"maxid", storeenc.encode_record(storeenc.COUNT, b"maxid", _u64(top)),
                        db=info)
                written[0] = top

        return on_commit

    def _fence(self, reason: str) -> None:
        if self.fenced is None:
            self.fenced = reason
            if self._on_fenced is not None:
                self._on_fenced(reason)

    # -- batching ----------------------------------------------------------------

    def _batch(self, e: _Env) -> Batch:
        b = e.batch
        if b is None:
            if self._loop is None:
                raise StoreError("store used before open()")
            b = e.batch = Batch(self._loop.create_future())
            if self._turn is None:
                self._turn = self._loop.create_future()
                # Callers that do not wait (acks) must not leave "exception never
                # retrieved" noise; the writer logs failures itself.
                self._turn.add_done_callback(_retrieve)
                self._loop.call_soon(self._seal)
        return b

    def _seal(self) -> None:
        # All writes of one loop turn go to the writers together.
        turn, self._turn = self._turn, None
        futs = []
        for e in self._envs.values():
            b = e.batch
            if b is not None:
                e.batch = None
                if b.max_id > e.max_id:
                    e.max_id = b.max_id
                self._writer(e).submit(b)
                futs.append(b.future)
        if turn is not None:
            _link(futs, turn, self._last_turn)
            self._last_turn = turn

    def _turn_future(self) -> asyncio.Future[None]:
        return self._turn  # type: ignore[return-value]  # set by the _batch just made

    def _store(self, name: str) -> _Env:
        e = self._envs.get(name)
        if e is None:
            raise StoreError(f"store '{name}' is not defined in stores.conf")
        return e

    # -- writes --------------------------------------------------------------------

    def put_message(self, store_name: str, holder: str, message_id: int,
                    blob: bytes) -> asyncio.Future[None]:
        e = self._envs.get(store_name) or self._store(store_name)
        key, rec = message_record(holder, message_id, blob)
        b = e.batch or self._batch(e)
        b.ops.append((PUT, e.msgs, key, rec))
        if message_id > b.max_id:
            b.max_id = message_id
        envs = self._holder_envs.get(holder)
        if envs is None:
            self._holder_envs[holder] = [e]
        elif e not in envs:
            envs.append(e)
        return self._turn_future()

    def _done(self) -> asyncio.Future[None]:
        # Nothing of this holder was ever stored here: nothing to write.
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        fut.set_result(None)
        return fut

    def remove_message(self, holder: str, message_id: int) -> asyncio.Future[None]:
        envs = self._holder_envs.get(holder)
        if not envs:
            return self._done()
        key = message_key(holder, message_id)
        if self._marks or self._counted:
            ident = (holder, message_id)
            if self._marks:
                self._marks.pop(ident, None)
            counted = ident in self._counted
            self._counted.discard(ident)
        else:
            counted = False
        for e in envs:
            b = e.batch or self._batch(e)
            b.ops.append((DEL, e.msgs, key, None))
            if counted:
                b.ops.append((DEL, e.dbs["counts"], key, None))
        return self._turn_future()

    def set_delivery_count(self, holder: str, message_id: int,
                           count: int) -> asyncio.Future[None]:
        envs = self._holder_envs.get(holder)
        if not envs:
            return self._done()
        key = storeenc.message_key(holder, message_id)
        rec = storeenc.encode_record(storeenc.COUNT, key, count.to_bytes(4, "big"))
        self._counted.add((holder, message_id))
        for e in envs:
            self._batch(e).ops.append((PUT, e.dbs["counts"], key, rec))
        return self._turn_future()

    def mark_delivered(self, holder: str, message_id: int) -> None:
        if holder not in self._holder_envs or self._loop is None:
            return
        self._marks[(holder, message_id)] = self._loop.time()
        if self._mark_timer is None:
            self._mark_timer = self._loop.call_later(MARK_DELAY, self._write_marks, False)

    def _write_marks(self, everything: bool) -> None:
        self._mark_timer = None
        assert self._loop is not None
        cutoff = self._loop.time() - MARK_DELAY
        due = [k for k, t in self._marks.items() if everything or t <= cutoff]
        for key in due:
            del self._marks[key]
            self.set_delivery_count(key[0], key[1], 1)
        if self._marks:
            self._mark_timer = self._loop.call_later(MARK_DELAY, self._write_marks, False)

    def remove_holder(self, holder: str) -> asyncio.Future[None]:
        self._marks = {k: t for k, t in self._marks.items() if k[0] != holder}
        envs = self._holder_envs.pop(holder, None)
        if not envs:
            return self._done()
        prefix = storeenc.holder_prefix(holder)
        self._counted = {c for c in self._counted if c[0] != holder}
        for e in envs:
            b = self._batch(e)
            b.ops.append((DELPREFIX, e.dbs["msgs"], prefix, None))
            b.ops.append((DELPREFIX, e.dbs["counts"], prefix, None))
        return self._turn_future()

    def _meta_put(self, db: str, key: bytes, kind: int, payload: bytes) -> asyncio.Future[None]:
        e = self._envs[META]
        b = self._batch(e)
        b.ops.append((PUT, e.dbs[db], key, storeenc.encode_record(kind, key, payload)))
        return self._turn_future()

    def _meta_del(self, db: str, key: bytes) -> asyncio.Future[None]:
        e = self._envs[META]
        b = self._batch(e)
        b.ops.append((DEL, e.dbs[db], key, None))
        return self._turn_future()

    def put_durable(self, record: DurableRecord) -> asyncio.Future[None]:
        payload = msgpack.packb([record.topic, record.selector, record.nolocal,
                                 record.client_id, record.name])
        return self._meta_put("durables", record.key.encode(), storeenc.DURABLE, payload)

    def remove_durable(self, key: str) -> asyncio.Future[None]:
        self.remove_holder("d:" + key)
        return self._meta_del("durables", key.encode())

    def put_destination(self, kind: str, name: str) -> asyncio.Future[None]:
        return self._meta_put("dests", f"{kind}\x00{name}".encode(), storeenc.DESTINATION, b"")

    def remove_destination(self, kind: str, name: str) -> asyncio.Future[None]:
        return self._meta_del("dests", f"{kind}\x00{name}".encode())

    def flush(self) -> asyncio.Future[None]:
        if self._marks:
            self._write_marks(True)
        for e in self._envs.values():
            self._batch(e)
        return self._turn_future()

    # -- recovery ------------------------------------------------------------------

    def recover(self) -> RecoveredState:
        state = RecoveredState()
        meta = self._envs[META]
        with meta.env.begin() as txn:
            for key, raw in txn.cursor(db=meta.dbs["durables"]):
                topic, selector, nolocal, client_id, name = msgpack.unpackb(
                    storeenc.decode_record(META, key, raw, storeenc.DURABLE)[1])
                state.durables.append(DurableRecord(key.decode(), topic, selector, nolocal,
                                                    client_id, name))
            for key, raw in txn.cursor(db=meta.dbs["dests"]):
                storeenc.decode_record(META, key, raw, storeenc.DESTINATION)
                kind, _, name = key.decode().partition("\x00")
                state.destinations.append((kind, name))
        state.destinations.sort()
        # The maxid record is written in the transaction of every put, so it is
        # never below a stored id.
        state.max_message_id = max(e.max_id for e in self._envs.values())
        state.messages = self._scan()
        return state

    def _scan(self) -> Iterator[StoredMessage]:
        """Message index of every store, one chunk at a time; bodies stay on disk."""
        for e in self._envs.values():
            name = e.cfg.name
            with e.env.begin() as txn:
                counts: dict[tuple[str, int], int] = {}
                for key, raw in txn.cursor(db=e.dbs["counts"]):
                    counts[storeenc.split_message_key(key)] = int.from_bytes(
                        storeenc.decode_record(name, key, raw, storeenc.COUNT)[1], "big")
                self._counted.update(counts)
                it = txn.cursor(db=e.msgs).iternext()
                while chunk := storeenc.scan_messages(name, it, _SCAN_CHUNK, StoredMessage,
                                                      counts):
                    for holder in {m.holder for m in chunk} - e.holders:
                        e.holders.add(holder)
                        self._holder_envs.setdefault(holder, []).append(e)
                    yield from chunk
            if e.writer is None and e.cfg.name != META:
                self._remap(e)

    def load_blob(self, holder: str, message_id: int) -> bytes:
        key = message_key(holder, message_id)
        for e in self._holder_envs.get(holder, ()):
            with e.env.begin() as txn:
                raw = txn.get(key, db=e.msgs)
            if raw is not None:
                return storeenc.decode_record(e.cfg.name, key, raw, storeenc.MESSAGE)[1]
        raise StoreError(f"message {holder}/{message_id} is not in the store")

    # -- closing -------------------------------------------------------------------

    def close(self) -> None:
        if self._mark_timer is not None:
            self._mark_timer.cancel()
            self._mark_timer = None
        if self._loop is not None and self._envs:
            self._seal()
        for e in self._envs.values():
            if e.writer is not None:
                e.writer.stop()
        self._close_envs()
        self._lock.release()
        self._loop = None

    def _close_envs(self) -> None:
        for e in self._envs.values():
            e.env.close()
        self._envs.clear()
