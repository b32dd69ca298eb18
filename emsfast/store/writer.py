"""One writer thread per LMDB environment (STYLE.md: One writer).

The loop hands over sealed batches (all writes of one event-loop turn for this
environment); the thread commits every batch waiting in one transaction, then
resolves their futures on the loop. The loop never waits for an fsync.

If the process dies anywhere in here, LMDB keeps the last committed
transaction: a batch is either wholly in the file or not at all, and its future
(hence the producer's confirmation) resolves only after the commit returned.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable
from typing import Any

import lmdb

from emsfast.errors import FencedError, StoreError
from emsfast.log import log

# Ops: (PUT, db, key, value) | (DEL, db, key, None) | (DELPREFIX, db, prefix, None)
PUT, DEL, DELPREFIX = 1, 2, 3
# Below this much free space a failed commit is reported as a full disk.
_LOW_DISK = 16 << 20
Op = tuple[int, Any, bytes, bytes | None]


class Batch:
    __slots__ = ("ops", "future", "max_id")

    def __init__(self, future: asyncio.Future[None]) -> None:
        self.ops: list[Op] = []
        self.future = future
        self.max_id = 0


def _resolve(batches: list[Batch], err: BaseException | None) -> None:
    for b in batches:
        fut = b.future
        if fut.done():
            continue
        if err is None:
            fut.set_result(None)
        else:
            fut.set_exception(err)


class EnvWriter(threading.Thread):
    """Drains batches into ``env``; ``check`` runs inside every write transaction
    (the epoch check) and raises FencedError when another server took over."""

    def __init__(self, name: str, env: lmdb.Environment, loop: asyncio.AbstractEventLoop,
                 check: Callable[[lmdb.Transaction], None],
                 on_commit: Callable[[lmdb.Transaction, list[Batch]], None],
                 on_fenced: Callable[[str], None], *, sync_interval: float | None,
                 max_map_size: int) -> None:
        super().__init__(name=f"store-writer {name}", daemon=True)
        self.store_name = name
        self.env = env
        self.loop = loop
        self._check = check
        self._on_commit = on_commit
        self._on_fenced = on_fenced
        self._sync_interval = sync_interval      # None: sync store, every commit fsyncs
        self._max_map_size = max_map_size
        self._cond = threading.Condition()
        self._queue: list[Batch] = []
        self._stopping = False
        self.fenced: str | None = None
        self._dirty = False
        self.commits = 0

    def submit(self, batch: Batch) -> None:
        with self._cond:
            self._queue.append(batch)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self.join()

    def _take(self) -> list[Batch] | None:
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                if self._dirty and self._sync_interval is not None:
                    if not self._cond.wait(self._sync_interval):
                        self._sync()
                else:
                    self._cond.wait()
            taken, self._queue = self._queue, []
            return taken

    def _sync(self) -> None:
        try:
            self.env.sync(True)
            self._dirty = False
        except lmdb.Error as exc:
            log.error(f"Store '{self.store_name}': sync failed: {exc}")

    def run(self) -> None:
        while (batches := self._take()) is not None:
            err = self._commit_with_retry(batches)
            try:
                self.loop.call_soon_threadsafe(_resolve, batches, err)
            except RuntimeError:
                return      # loop closed: nobody waits any more
        if self._dirty:
            self._sync()

    def _commit_with_retry(self, batches: list[Batch]) -> BaseException | None:
        if self.fenced is not None:
            return FencedError(self.fenced)
        while True:
            try:
                self._commit(batches)
                return None
            except lmdb.MapFullError:
                size = self.env.info()["map_size"]
                if size * 2 > self._max_map_size:
                    msg = (f"store '{self.store_name}' is full: map size {size >> 20} MB "
                           f"reached its limit of {self._max_map_size >> 20} MB")
                    log.error(msg)
                    return StoreError(msg)
                # Between transactions only this thread writes; LMDB refuses the
                # resize while another thread has a read open, so that batch fails.
                try:
                    self.env.set_mapsize(size * 2)
                except lmdb.Error as exc:
                    msg = f"store '{self.store_name}' is full and could not grow: {exc}"
                    log.error(msg)
                    return StoreError(msg)
                log.warning(f"Store '{self.store_name}': map size grown to {size >> 19} MB.")
            except FencedError as exc:
                self.fenced = str(exc)
                try:
                    self.loop.call_soon_threadsafe(self._on_fenced, str(exc))
                except RuntimeError:
                    pass
                return exc
            except Exception as exc:    # lmdb.Error, OSError (disk full), a bug: never die
                msg = f"store '{self.store_name}': write failed: {exc}{self._disk_hint()}"
                log.error(msg[0].upper() + msg[1:])
                return StoreError(msg)

    def _disk_hint(self) -> str:
        # LMDB reports a short write on a full disk as EIO; say what it really is.
        try:
            free = shutil.disk_usage(self.env.path()).free
        except OSError:
            return ""
        if free < _LOW_DISK:
            return f" (disk full: {free >> 10} KB free for '{self.env.path()}')"
        return ""

    def _commit(self, batches: list[Batch]) -> None:
        with self.env.begin(write=True) as txn:
            self._check(txn)
            put, delete = txn.put, txn.delete
            for batch in batches:
                for op, db, key, value in batch.ops:
                    if op == PUT:
                        put(key, value, db=db)  # type: ignore[arg-type]  # PUT has a value
                    elif op == DEL:
                        delete(key, db=db)
                    else:
                        _delete_prefix(txn, db, key)
            self._on_commit(txn, batches)
        self.commits += 1
        self._dirty = True


def _delete_prefix(txn: lmdb.Transaction, db: Any, prefix: bytes) -> None:
    cur = txn.cursor(db=db)
    if not cur.set_range(prefix):
        return
    while bytes(cur.key()).startswith(prefix):
        if not cur.delete():
            break
