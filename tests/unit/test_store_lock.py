"""One contract suite for both StoreLock implementations (STYLE.md: Lock)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from emsfast.ft.lock import FileStoreLock, InMemoryStoreLock, StoreLock

LOCKS: dict[str, Callable[[Path], StoreLock]] = {
    "file": lambda d: FileStoreLock(str(d)),
    "memory": lambda d: InMemoryStoreLock(str(d)),
}


@pytest.fixture(params=sorted(LOCKS))
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], StoreLock]]:
    made: list[StoreLock] = []

    def factory() -> StoreLock:
        lock = LOCKS[request.param](tmp_path)
        made.append(lock)
        return lock

    yield factory
    for lock in made:
        lock.release()


def test_one_owner_at_a_time(make: Callable[[], StoreLock]) -> None:
    a, b = make(), make()
    assert a.try_acquire() and a.held
    assert a.try_acquire()          # re-entrant for its owner
    assert not b.try_acquire() and not b.held
    a.release()
    assert not a.held
    assert b.try_acquire()
    assert not a.try_acquire()


def test_acquire_times_out(make: Callable[[], StoreLock]) -> None:
    a, b = make(), make()
    assert a.try_acquire()
    start = time.monotonic()
    assert not b.acquire(timeout=0.1)
    assert time.monotonic() - start >= 0.09


def test_blocking_acquire_wakes_on_release(make: Callable[[], StoreLock]) -> None:
    a, b = make(), make()
    assert a.try_acquire()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(b.acquire(timeout=10)))
    waiter.start()
    time.sleep(0.05)
    assert not got
    a.release()
    waiter.join(5)
    assert got == [True] and b.held


def test_release_without_holding_is_harmless(make: Callable[[], StoreLock]) -> None:
    a, b = make(), make()
    assert a.try_acquire()
    b.release()
    assert a.held and isinstance(a.owner(), str)
