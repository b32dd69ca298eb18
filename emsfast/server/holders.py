"""Message holders: queues and topic subscriptions, with priority order,
round-robin dispatch under consumer credit, limits and redelivery counts.

A holder counts a message from publish until acknowledgement (EMS counts
delivered-but-unacked messages against ``maxmsgs``/``maxbytes``); ``ready`` is
the part not yet handed to a consumer.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from emsfast.config.destinations import DestinationProps
from emsfast.errors import LimitError
from emsfast.server.messages import ServerMessage

if TYPE_CHECKING:
    from emsfast.selector import Selector

PRIORITY_LEVELS = 10


class ConsumerLike(Protocol):
    credit: int
    selector: Selector | None

    @property
    def writable(self) -> bool: ...

    def deliver(self, holder: Holder, msg: ServerMessage, count: int) -> None: ...

    def backlog_overflow(self, holder: Holder) -> None: ...


class HolderOwner(Protocol):
    """What a holder needs from the broker: the store and the server's name."""

    server_name: str

    def discard(self, holder: Holder, msg: ServerMessage, reason: str) -> None: ...


class Holder:
    """An ordered set of messages waiting for consumers."""

    kind = "queue"
    deleted = False     # a deleted temporary queue; its producers fail

    def __init__(self, owner: HolderOwner, key: str, name: str,
                 props: DestinationProps) -> None:
        self.owner = owner
        self.key = key                  # store key: "q:name" or "d:durable"
        self.name = name
        self.props = props
        self._levels: list[deque[ServerMessage]] = [deque() for _ in range(PRIORITY_LEVELS)]
        self._top = 0                   # highest level that may be non-empty
        self.ready = 0
        self.ready_bytes = 0          # bytes of the ready messages
        self.count = 0                  # pending incl. delivered-unacked
        self.bytes = 0
        self.consumers: list[ConsumerLike] = []
        self._rr = 0
        self._selective = 0             # consumers with a selector (queues only)
        self.redeliveries: dict[int, int] = {}   # msg id -> deliveries so far
        self.delivered_total = 0
        self.received_total = 0
        # redeliveryDelay: returned messages waiting for their time, in due order
        # (one delay per holder), under one timer for the whole holder.
        self._parked: deque[tuple[float, ServerMessage, int]] = deque()
        self._park_timer: asyncio.TimerHandle | None = None

    # -- limits --------------------------------------------------------------

    def admit(self, size: int) -> None:
        """Reserve room for one more message or raise LimitError (overflowPolicy)."""
        props = self.props
        maxmsgs, maxbytes = props.maxmsgs, props.maxbytes
        if (maxmsgs and self.count >= maxmsgs) or (maxbytes and self.bytes + size > maxbytes):
            if props.overflow_policy == "discardOld" and self._drop_oldest():
                return self.admit(size)
            limit = (f"maxmsgs={maxmsgs}" if maxmsgs and self.count >= maxmsgs
                     else f"maxbytes={maxbytes}")
            raise LimitError(f"{self.kind} '{self.name}' has reached its limit of {limit}")
        self.count += 1
        self.bytes += size
        self.received_total += 1

    def _drop_oldest(self) -> bool:
        for level in self._levels:
            if level:
                msg = level.popleft()
                self.ready -= 1
                self.ready_bytes -= msg.size
                self._forget(msg)
                self.owner.discard(self, msg, "discardOld")
                return True
        return False

    def _forget(self, msg: ServerMessage) -> None:
        self.count -= 1
        self.bytes -= msg.size
        self.redeliveries.pop(msg.id, None)

    # -- queueing ------------------------------------------------------------

    def enqueue(self, msg: ServerMessage) -> None:
        """Add an admitted message and hand it out if a consumer has credit."""
        p = msg.priority
        self._levels[p].append(msg)
        if p > self._top:
            self._top = p
        self.ready += 1
        self.ready_bytes += msg.size
        if self.consumers:
            self.dispatch()

    def add_recovered(self, msgs: list[ServerMessage], nbytes: int) -> None:
        """Messages read back from the store, in id order, before any consumer:
        counted and queued in one pass, without a dispatch attempt each."""
        self.count += len(msgs)
        self.bytes += nbytes
        levels = self._levels
        for msg in msgs:
            levels[msg.priority].append(msg)
        self.ready += len(msgs)
        self.ready_bytes += nbytes
        self._top = max(self._top, max(msg.priority for msg in msgs))

    def restore(self, msg: ServerMessage, delivered: int) -> None:
        """Put back an unacknowledged message at the head of its level."""
        self.redeliveries[msg.id] = delivered
        p = msg.priority
        self._levels[p].appendleft(msg)
        if p > self._top:
            self._top = p
        self.ready += 1
        self.ready_bytes += msg.size

    def park(self, msg: ServerMessage, delivered: int) -> None:
        """Return an unacknowledged message after ``redeliveryDelay`` (EMS.md 5.4).

        It keeps counting against the limits while parked, as EMS's
        ``$sys.redelivery.delay`` does.
        """
        self.redeliveries[msg.id] = delivered
        loop = asyncio.get_running_loop()
        due = loop.time() + self.props.redelivery_delay_ms / 1000
        self._parked.append((due, msg, delivered))
        if self._park_timer is None:
            self._park_timer = loop.call_at(due, self._unpark)

    def _unpark(self) -> None:
        self._park_timer = None
        parked = self._parked
        loop = asyncio.get_running_loop()
        now = loop.time()
        due: list[tuple[float, ServerMessage, int]] = []
        while parked and parked[0][0] <= now:
            due.append(parked.popleft())
        # restore() puts each at the head of its level: newest first keeps id order.
        for _, msg, delivered in sorted(due, key=lambda p: p[1].id, reverse=True):
            self.restore(msg, delivered)
        if parked:
            self._park_timer = loop.call_at(parked[0][0], self._unpark)
        self.dispatch()

    def _drop_parked(self) -> list[ServerMessage]:
        if self._park_timer is not None:
            self._park_timer.cancel()
            self._park_timer = None
        dropped = [msg for _, msg, _ in self._parked]
        self._parked.clear()
        return dropped

    def acked(self, msg: ServerMessage) -> None:
        self._forget(msg)

    def iter_ready(self) -> list[ServerMessage]:
        out: list[ServerMessage] = []
        for level in reversed(self._levels):
            out.extend(level)
        return out

    def purge(self) -> list[ServerMessage]:
        dropped = self.iter_ready()
        for level in self._levels:
            level.clear()
        dropped += self._drop_parked()
        for msg in dropped:
            self._forget(msg)
        self.ready = 0
        self.ready_bytes = 0
        return dropped

    # -- consumers -----------------------------------------------------------

    def add_consumer(self, consumer: ConsumerLike) -> None:
        self.consumers.append(consumer)
        if consumer.selector is not None:
            self._selective += 1

    def remove_consumer(self, consumer: ConsumerLike) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)
            if consumer.selector is not None:
                self._selective -= 1
            self._rr = 0

    def dispatch(self) -> None:
        """Hand ready messages to consumers with credit, highest priority first."""
        if not self.ready or not self.consumers:
            return
        if self._selective:
            self._dispatch_selective()
            return
        consumers = self.consumers
        if self.props.exclusive:
            consumers = consumers[:1]
        n = len(consumers)
        levels = self._levels
        redeliveries = self.redeliveries
        now = 0
        rr = self._rr
        while self.ready:
            for i in range(n):
                c = consumers[(rr + i) % n]
                if c.credit > 0 and c.writable:
                    rr = (rr + i + 1) % n
                    break
            else:
                break
            # Round-robin hands one message per turn; a lone consumer takes its
            # whole credit at once.
            take = c.credit if n == 1 else 1
            while take and self.ready:
                top = self._top
                while not levels[top]:
                    top -= 1
                self._top = top
                msg = levels[top].popleft()
                self.ready -= 1
                self.ready_bytes -= msg.size
                if msg.expiration:
                    now = now or int(time.time() * 1000)
                    if msg.expiration <= now:
                        self._forget(msg)
                        self.owner.discard(self, msg, "expired")
                        continue
                count = redeliveries.get(msg.id, 0) + 1 if redeliveries else 1
                self.delivered_total += 1
                c.deliver(self, msg, count)
                take -= 1
                if not c.writable:
                    break   # its connection stopped writing: keep the rest here
        self._rr = rr

    def _dispatch_selective(self) -> None:
        # O(ready) scan: each message goes to the first consumer with credit whose
        # selector accepts it; messages nobody selects stay for later consumers.
        consumers = self.consumers[:1] if self.props.exclusive else self.consumers
        now = int(time.time() * 1000)
        server = self.owner.server_name
        for p in range(PRIORITY_LEVELS - 1, -1, -1):
            level = self._levels[p]
            if not level:
                continue
            kept: deque[ServerMessage] = deque()
            while level:
                if not any(c.credit > 0 and c.writable for c in consumers):
                    kept.extend(level)
                    level.clear()
                    break
                msg = level.popleft()
                if msg.expiration and msg.expiration <= now:
                    self.ready -= 1
                    self.ready_bytes -= msg.size
                    self._forget(msg)
                    self.owner.discard(self, msg, "expired")
                    continue
                target = self._pick(consumers, msg, server)
                if target is None:
                    kept.append(msg)
                    continue
                self.ready -= 1
                self.ready_bytes -= msg.size
                count = self.redeliveries.get(msg.id, 0) + 1
                self.delivered_total += 1
                target.deliver(self, msg, count)
            level.extend(kept)

    def _pick(self, consumers: list[ConsumerLike], msg: ServerMessage,
              server: str) -> ConsumerLike | None:
        n = len(consumers)
        get: Callable[[str], Any] | None = None
        for i in range(n):
            c = consumers[(self._rr + i) % n]
            if c.credit <= 0 or not c.writable:
                continue
            sel = c.selector
            if sel is not None:
                if get is None:
                    get = msg.field_getter(server, self.redeliveries.get(msg.id, 0))
                if not sel.matches(get):
                    continue
            self._rr = (self._rr + i + 1) % n
            return c
        return None


class Subscription(Holder):
    """A topic subscriber's own queue: non-durable, durable or shared durable.

    Selectors and noLocal are applied when the topic publishes, so a
    subscription only holds messages it will deliver.
    """

    kind = "subscription"
    # max_client_pending_bytes for a non-durable, unshared subscription: its messages
    # exist only for one connection, so a client that does not read them must not
    # make them pile up without bound (0 = off; durables have maxbytes).
    backlog_limit = 0

    def __init__(self, owner: HolderOwner, key: str, topic_pattern: str,
                 props: DestinationProps, selector: Selector | None, nolocal_conn: int,
                 durable: str | None = None) -> None:
        super().__init__(owner, key, topic_pattern, props)
        self.topic_pattern = topic_pattern
        self.filter = selector
        self.nolocal_conn = nolocal_conn    # 0 = deliver own messages too
        self.durable = durable
        self.shared = False                 # JMS 2.0: several consumers, each message to one
        self.shared_key: str | None = None  # name of a shared non-durable subscription

    def enqueue(self, msg: ServerMessage) -> None:
        super().enqueue(msg)
        if self.backlog_limit and self.bytes > self.backlog_limit and self.consumers:
            # Only messages still waiting count: delivered-unacknowledged ones went to
            # a client that reads (CLIENT_ACK in batches); one message alone never
            # overflows, however large.
            if self.ready > 1 and self.ready_bytes > self.backlog_limit:
                self.consumers[0].backlog_overflow(self)

    def accepts(self, msg: ServerMessage, server: str) -> bool:
        if self.nolocal_conn and msg.origin == self.nolocal_conn:
            return False
        sel = self.filter
        return sel is None or bool(sel.matches(msg.field_getter(server)))
