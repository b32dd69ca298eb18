"""In-memory ``Store``: the reference implementation and the test double.

Nothing survives the process; the batching behaviour mirrors the LMDB store
(every write in one event-loop turn shares one future) so the server's code
paths are the same with either.
"""

from __future__ import annotations

import asyncio

from emsfast.errors import StoreError
from emsfast.store.base import DurableRecord, RecoveredState, StoredMessage


class MemoryStore:
    def __init__(self) -> None:
        self._messages: dict[str, dict[int, tuple[bytes, int]]] = {}
        self._durables: dict[str, DurableRecord] = {}
        self._destinations: set[tuple[str, str]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batch: asyncio.Future[None] | None = None
        self._max_id = 0

    def open(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def recover(self) -> RecoveredState:
        messages = [StoredMessage(holder, mid, blob, count)
                    for holder, msgs in self._messages.items()
                    for mid, (blob, count) in msgs.items()]
        messages.sort(key=lambda m: m.message_id)
        state = RecoveredState(messages=messages, max_message_id=self._max_id)
        state.durables = list(self._durables.values())
        state.destinations = sorted(self._destinations)
        return state

    def load_blob(self, holder: str, message_id: int) -> bytes:
        try:
            return self._messages[holder][message_id][0]
        except KeyError:
            raise StoreError(f"message {holder}/{message_id} is not in the store") from None

    def _future(self) -> asyncio.Future[None]:
        # All writes of one loop turn share a future resolved on the next turn,
        # as a group commit would.
        if self._loop is None:
            raise StoreError("store used before open()")
        if self._batch is None:
            fut = self._batch = self._loop.create_future()
            self._loop.call_soon(self._complete, fut)
        return self._batch

    def _complete(self, fut: asyncio.Future[None]) -> None:
        self._batch = None
        if not fut.done():
            fut.set_result(None)

    def put_message(self, store_name: str, holder: str, message_id: int,
                    blob: bytes) -> asyncio.Future[None]:
        self._messages.setdefault(holder, {})[message_id] = (blob, 0)
        if message_id > self._max_id:
            self._max_id = message_id
        return self._future()

    def remove_message(self, holder: str, message_id: int) -> asyncio.Future[None]:
        msgs = self._messages.get(holder)
        if msgs is not None:
            msgs.pop(message_id, None)
        return self._future()

    def set_delivery_count(self, holder: str, message_id: int,
                           count: int) -> asyncio.Future[None]:
        msgs = self._messages.get(holder)
        if msgs is not None and message_id in msgs:
            msgs[message_id] = (msgs[message_id][0], count)
        return self._future()

    def mark_delivered(self, holder: str, message_id: int) -> None:
        msgs = self._messages.get(holder)
        if msgs is not None and message_id in msgs and not msgs[message_id][1]:
            msgs[message_id] = (msgs[message_id][0], 1)

    def remove_holder(self, holder: str) -> asyncio.Future[None]:
        self._messages.pop(holder, None)
        return self._future()

    def put_durable(self, record: DurableRecord) -> asyncio.Future[None]:
        self._durables[record.key] = record
        return self._future()

    def remove_durable(self, key: str) -> asyncio.Future[None]:
        self._durables.pop(key, None)
        self._messages.pop("d:" + key, None)
        return self._future()

    def put_destination(self, kind: str, name: str) -> asyncio.Future[None]:
        self._destinations.add((kind, name))
        return self._future()

    def remove_destination(self, kind: str, name: str) -> asyncio.Future[None]:
        self._destinations.discard((kind, name))
        return self._future()

    def flush(self) -> asyncio.Future[None]:
        return self._future()

    def close(self) -> None:
        self._loop = None

    # Introspection for tests and the admin tool.
    def message_count(self, holder: str) -> int:
        return len(self._messages.get(holder, ()))
