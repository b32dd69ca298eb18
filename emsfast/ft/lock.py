"""The store lock: one owner per store directory (DESIGN.md §5, EMS.md 1.4).

``FileStoreLock`` takes ``flock(LOCK_EX)`` on ``<store dir>/emsfast.lock``; the
kernel frees it when the owner dies, so a standby waiting in ``acquire`` wakes at
once. ``InMemoryStoreLock`` is its twin for single-process tests (after Artemis'
InVMNodeManager); both pass one contract suite.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from typing import ClassVar, Protocol

LOCK_FILE = "emsfast.lock"
# flock has no timeout; a blocking acquire polls at this pace.
_POLL_SECONDS = 0.01


class StoreLock(Protocol):
    path: str

    @property
    def held(self) -> bool: ...

    def try_acquire(self) -> bool:
        """Take the lock if free; never blocks."""

    def acquire(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: forever) for the lock."""

    def release(self) -> None: ...

    def owner(self) -> str:
        """What is known about the current owner (for error messages)."""


def _wait(lock: StoreLock, timeout: float | None) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    while not lock.try_acquire():
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True


class FileStoreLock:
    def __init__(self, store_dir: str) -> None:
        self.path = os.path.join(store_dir, LOCK_FILE)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        # The pid is for operators only; the flock is the lock.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return True

    def acquire(self, timeout: float | None = None) -> bool:
        return _wait(self, timeout)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)        # closing the descriptor drops the flock

    def owner(self) -> str:
        try:
            with open(self.path) as f:
                pid = f.read().strip()
        except OSError:
            return "unknown owner"
        return f"pid {pid}" if pid else "unknown owner"


class InMemoryStoreLock:
    """One owner per ``path`` within this process."""

    _owners: ClassVar[dict[str, int]] = {}
    _guard: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, path: str) -> None:
        self.path = path

    @property
    def held(self) -> bool:
        with self._guard:
            return self._owners.get(self.path) == id(self)

    def try_acquire(self) -> bool:
        with self._guard:
            owner = self._owners.setdefault(self.path, id(self))
            return owner == id(self)

    def acquire(self, timeout: float | None = None) -> bool:
        return _wait(self, timeout)

    def release(self) -> None:
        with self._guard:
            if self._owners.get(self.path) == id(self):
                del self._owners[self.path]

    def owner(self) -> str:
        return "another in-process owner"
