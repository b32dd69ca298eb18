"""Which persistent sends of FT clients are stored, so a resend is not stored twice.

A client with a ``client_token`` resends its unconfirmed persistent sends after a
failover or a reconnect (client/failover.py). Per origin (token + producer id) the
server knows the highest send it routed; a resend at or below it is a duplicate.
But routed is not stored: the original may still be in the store's queue, or
its commit may fail. So a resend is answered from the original's outcome:
confirmed once the original's commit lands, failed if it failed, and stored anew
if the original had already failed when the resend came.

The highest *committed* send per origin is in the store too (Store.note_send, in
the message's own transaction), which is what a successor starts from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# Failed sends remembered per origin are kept within STALE sends of the newest (far
# beyond any producer window, 1,000 by default), pruned _PRUNE_AT at a time.
_PRUNE_AT = 16384
STALE = 65536


class SendRecord:
    def __init__(self) -> None:
        self.highest: dict[bytes, int] = {}     # origin -> highest seq routed to the store
        self._storing: dict[tuple[bytes, int], asyncio.Future[None]] = {}
        self._failed: dict[bytes, set[int]] = {}   # origin -> seqs whose commit failed

    def recovered(self, sends: dict[bytes, int]) -> None:
        self.highest = sends
        self._storing.clear()
        self._failed.clear()

    def storing(self, origin: bytes, seq: int, fut: asyncio.Future[None]) -> None:
        """The send ``seq`` of ``origin`` goes to the store with ``fut``."""
        # max: the resend of a failed send is stored anew below later stored ones.
        self.highest[origin] = max(seq, self.highest.get(origin, 0))
        key = (origin, seq)
        self._storing[key] = fut
        fut.add_done_callback(lambda f: self._settled(key, f))

    def _settled(self, key: tuple[bytes, int], fut: asyncio.Future[None]) -> None:
        if self._storing.get(key) is fut:
            del self._storing[key]
        if fut.cancelled() or fut.exception() is not None:
            origin, seq = key
            failed = self._failed.setdefault(origin, set())
            failed.add(seq)
            if len(failed) > STALE + _PRUNE_AT:     # amortized: each prune drops _PRUNE_AT
                # A client waits for at most its window of unconfirmed sends; one that
                # has sent STALE more since has had these answers and will not resend.
                floor = self.highest.get(origin, 0) - STALE
                failed.difference_update([s for s in failed if s < floor])

    def resend(self, origin: bytes, seq: int,
               answer: Callable[[BaseException | None], None]) -> bool:
        """True if ``seq`` duplicates a send routed before; ``answer`` is then called
        with the original's failure (None: stored), at once or when its commit ends.
        False: a new send, or one whose original failed: store it."""
        last = self.highest.get(origin)
        if last is None or seq > last:
            return False
        failed = self._failed.get(origin)
        if failed is not None and seq in failed:
            failed.discard(seq)
            return False
        key = (origin, seq)
        fut = self._storing.get(key)
        if fut is None:
            answer(None)
            return True

        def done(f: asyncio.Future[None]) -> None:
            answer(asyncio.CancelledError() if f.cancelled() else f.exception())

        fut.add_done_callback(done)
        return True

    def forget(self, prefix: bytes) -> None:
        """A client that did not come back: drop its producers' records."""
        for origin in [o for o in self.highest if o.startswith(prefix)]:
            del self.highest[origin]
        for origin in [o for o in self._failed if o.startswith(prefix)]:
            del self._failed[origin]
