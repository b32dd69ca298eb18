"""Queue browsers: iterate a snapshot of a queue without consuming it."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from emsfast.client.messages import Message, Queue, decode
from emsfast.client.session import silence
from emsfast.errors import InvalidError, ProtocolError
from emsfast.selector import compile_selector

if TYPE_CHECKING:
    from emsfast.client.session import Session

__all__ = ["QueueBrowser"]


class QueueBrowser:
    """``async for msg in session.browser(queue)``: the messages queued when the browser
    was created (selector applied), highest priority first, fetched in batches."""

    def __init__(self, session: Session, queue: Queue, selector: str | None,
                 batch: int) -> None:
        if not isinstance(queue, Queue):
            raise InvalidError(f"browsers are for queues, got {queue!r}")
        if batch < 1:
            raise InvalidError(f"batch must be at least 1, got {batch}")
        conn = session.connection
        if selector is not None:
            # A bad selector fails here, not later.
            compile_selector(selector, conn.max_selector_length)
        self.session = session
        self.connection = conn
        self.queue = queue
        self.selector = selector
        self.id = conn.next_id()
        self._batch = batch
        self._buffer: deque[Message] = deque()
        self._done = False
        self._id_prefix = f"ID:{conn.server_name}."
        fields: dict[str, Any] = {"browser": self.id, "dest": queue.name}
        if selector:
            fields["selector"] = selector
        self.ready = conn.request("browser.create", fields)
        self.ready.add_done_callback(silence)

    def __repr__(self) -> str:
        return f"<emsfast.QueueBrowser {self.id} queue:{self.queue.name}>"

    def __aiter__(self) -> QueueBrowser:
        return self

    async def __anext__(self) -> Message:
        while not self._buffer:
            if self._done:
                raise StopAsyncIteration
            await self._fetch()
        return self._buffer.popleft()

    async def messages(self) -> list[Message]:
        """Every message of the snapshot not yet iterated."""
        return [msg async for msg in self]

    async def _fetch(self) -> None:
        await self.ready
        self.connection.check_open()
        reply = await self.connection.request("browser.next",
                                              {"browser": self.id, "max": self._batch})
        items = reply.get("messages")
        if not isinstance(items, list):
            raise ProtocolError(f"browser.next reply without a message list: {reply!r:.80}")
        for mid, count, blob in items:
            msg = decode(blob, self._id_prefix + str(mid), count)
            if msg.destination is None:
                msg.destination = self.queue
            self._buffer.append(msg)
        self._done = bool(reply.get("done"))

    async def close(self) -> None:
        """Drop the rest of the snapshot on the server (also done at the end of it)."""
        if self._done or self.connection.is_closed:
            self._done = True
            return
        self._done = True
        self._buffer.clear()
        try:
            await self.ready
        except Exception:
            return      # never existed on the server
        await self.connection.request("browser.close", {"browser": self.id})

    async def __aenter__(self) -> QueueBrowser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
