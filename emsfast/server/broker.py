"""Destinations, subscriptions and durables; routing of published messages.

The broker owns every holder and decides where a message goes; connections own
consumers and deliveries. Destinations must match a ``queues.conf`` /
``topics.conf`` entry to exist (EMS.md 4.4).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from emsfast.config.destinations import DestinationProps, DestinationTable
from emsfast.config.names import validate_destination_name, wildcard_match
from emsfast.errors import InUseError, LimitError, NotAllowedError, NotFoundError
from emsfast.log import log
from emsfast.server.holders import Holder, Subscription
from emsfast.server.messages import ServerMessage, stored_message
from emsfast.server.temporary import Temporaries, is_temporary
from emsfast.store.base import DurableRecord, RecoveredState, Store

if TYPE_CHECKING:
    from emsfast.config.durables import StaticDurable
    from emsfast.selector import Selector

UNDELIVERED = "$sys.undelivered"
DEFAULT_STORE = "$sys.nonfailsafe"


class Topic:
    __slots__ = ("name", "props", "subscriptions", "published_total", "deleted")

    def __init__(self, name: str, props: DestinationProps) -> None:
        self.name = name
        self.props = props
        self.subscriptions: list[Subscription] = []
        self.published_total = 0
        self.deleted = False        # a deleted temporary topic; its producers fail


class Broker:
    def __init__(self, server_name: str, store: Store, queue_table: DestinationTable,
                 topic_table: DestinationTable) -> None:
        self.server_name = server_name
        self.store = store
        self.queue_table = queue_table
        self.topic_table = topic_table
        self.queues: dict[str, Holder] = {}
        self.topics: dict[str, Topic] = {}
        self.wildcard_subs: list[Subscription] = []
        self.durables: dict[str, Subscription] = {}
        self.shared: dict[str, Subscription] = {}    # shared non-durable, by name
        self.temporaries = Temporaries(self)
        self._next_id = 1
        self._sub_seq = 0
        self.known_stores: frozenset[str] | None = None   # None: any (tests)
        self.recovered_holders = 0

    def next_message_id(self) -> int:
        mid = self._next_id
        self._next_id = mid + 1
        return mid

    # -- destinations --------------------------------------------------------

    def _props(self, kind: str, name: str) -> DestinationProps:
        table = self.queue_table if kind == "queue" else self.topic_table
        props = table.resolve(name)
        if props is None:
            raise NotAllowedError(
                f"{kind} '{name}' does not exist and no entry in {kind}s.conf allows creating it"
            )
        if self.known_stores is not None and props.store not in self.known_stores:
            raise NotAllowedError(f"{kind} '{name}' uses store '{props.store}', which is "
                                  "not defined in stores.conf")
        return props

    def resolve_props(self, kind: str, name: str) -> DestinationProps:
        return self._props(kind, name)

    def queue(self, name: str) -> Holder:
        holder = self.queues.get(name)
        if holder is None:
            if is_temporary(name):
                raise NotFoundError(f"temporary queue '{name}' does not exist")
            validate_destination_name(name, wildcards=False)
            holder = Holder(self, "q:" + name, name, self._props("queue", name))
            self.queues[name] = holder
        return holder

    def topic(self, name: str) -> Topic:
        topic = self.topics.get(name)
        if topic is None:
            if is_temporary(name):
                raise NotFoundError(f"temporary topic '{name}' does not exist")
            validate_destination_name(name, wildcards=False)
            topic = self.add_topic(name, self._props("topic", name))
        return topic

    def add_topic(self, name: str, props: DestinationProps) -> Topic:
        topic = Topic(name, props)
        topic.subscriptions = [s for s in self.wildcard_subs
                               if wildcard_match(s.topic_pattern, name)]
        self.topics[name] = topic
        return topic

    def store_name(self, props: DestinationProps) -> str:
        return props.store or DEFAULT_STORE

    # -- subscriptions -------------------------------------------------------

    def subscribe(self, pattern: str, selector: Selector | None, nolocal_conn: int,
                  durable_key: str | None = None, client_id: str | None = None,
                  durable_name: str | None = None, selector_text: str | None = None,
                  nolocal: bool = False, shared: bool = False,
                  shared_key: str | None = None) -> Subscription:
        """Create (or, for durables and shared ones, find) the subscription a
        consumer attaches to.

        ``shared``: JMS 2.0 shared subscription; several consumers attach to one
        subscription and each message goes to one of them. A shared durable is
        named by ``durable_key``, a shared non-durable one by ``shared_key``.
        """
        wildcard = "*" in pattern.split(".") or ">" in pattern.split(".")
        validate_destination_name(pattern, wildcards=True)
        props = self._props("topic", pattern)
        if durable_key is not None:
            existing = self.durables.get(durable_key)
            if existing is not None:
                same = existing.topic_pattern == pattern and _same(existing.filter, selector)
                if existing.consumers:
                    if not (shared and existing.shared):
                        raise InUseError(f"durable '{durable_key}' is already in use")
                    if not same:
                        raise InUseError(f"shared durable '{durable_key}' is in use with "
                                         "another topic or selector")
                    return existing
                if same:
                    existing.nolocal_conn = nolocal_conn
                    existing.shared = shared
                    return existing
                # JMS: a changed topic or selector replaces the durable.
                self.unsubscribe(durable_key)
            sub = Subscription(self, "d:" + durable_key, pattern, props, selector,
                               nolocal_conn, durable=durable_key)
            sub.shared = shared
            self.durables[durable_key] = sub
            self.store.put_durable(DurableRecord(
                key=durable_key, topic=pattern, selector=selector_text, nolocal=nolocal,
                client_id=client_id, name=durable_name or durable_key))
        elif shared_key is not None:
            existing = self.shared.get(shared_key)
            if existing is not None:
                if existing.topic_pattern != pattern or not _same(existing.filter, selector):
                    raise InUseError(f"shared subscription '{shared_key}' is in use with "
                                     "another topic or selector")
                return existing
            self._sub_seq += 1
            sub = Subscription(self, f"s:{self._sub_seq}", pattern, props, selector, 0)
            sub.shared = True
            sub.shared_key = shared_key
            self.shared[shared_key] = sub
        else:
            self._sub_seq += 1
            sub = Subscription(self, f"s:{self._sub_seq}", pattern, props, selector,
                               nolocal_conn)
        self._attach(sub, wildcard)
        return sub

    def _attach(self, sub: Subscription, wildcard: bool) -> None:
        if wildcard:
            self.wildcard_subs.append(sub)
            for name, topic in self.topics.items():
                if wildcard_match(sub.topic_pattern, name):
                    topic.subscriptions.append(sub)
        else:
            self.topic(sub.topic_pattern).subscriptions.append(sub)

    def drop_subscription(self, sub: Subscription) -> None:
        if sub.shared_key is not None:
            self.shared.pop(sub.shared_key, None)
        if sub in self.wildcard_subs:
            self.wildcard_subs.remove(sub)
        for topic in self.topics.values():
            if sub in topic.subscriptions:
                topic.subscriptions.remove(sub)
        sub.purge()

    def unsubscribe(self, durable_key: str) -> None:
        sub = self.durables.get(durable_key)
        if sub is None:
            raise NotFoundError(f"durable '{durable_key}' does not exist")
        if sub.consumers:
            raise InUseError(f"durable '{durable_key}' has an active subscriber")
        del self.durables[durable_key]
        self.drop_subscription(sub)
        self.store.remove_durable(durable_key)

    # -- publishing ----------------------------------------------------------

    def route_topic(self, topic: Topic, msg: ServerMessage,
                    after_store: Callable[[asyncio.Future[None] | None, Exception | None], None]
                    ) -> None:
        """Deliver ``msg`` to every accepting subscription of ``topic``.

        Persistent messages are first written for each durable that takes them;
        ``after_store(future, error)`` is told which batch future to wait on (None
        when nothing had to be stored) before the message becomes visible.
        """
        topic.published_total += 1
        server = self.server_name
        targets: list[Subscription] = []
        policy_reject = topic.props.overflow_policy == "rejectIncoming"
        for sub in topic.subscriptions:
            if not sub.accepts(msg, server):
                continue
            try:
                sub.admit(msg.size)
            except LimitError as exc:
                if policy_reject:
                    for t in targets:
                        t.acked(msg)
                    after_store(None, exc)
                    return
                continue    # default policy: the full subscriber misses it
            targets.append(sub)
        fut: asyncio.Future[None] | None = None
        if msg.persistent:
            store_name = self.store_name(topic.props)
            for sub in targets:
                if sub.durable is not None:
                    fut = self.store.put_message(store_name, sub.key, msg.id, msg.blob)
        if fut is None:
            for sub in targets:
                sub.enqueue(msg)
            after_store(None, None)
            return

        def visible(f: asyncio.Future[None]) -> None:
            if f.cancelled() or f.exception() is not None:
                for sub in targets:
                    sub.acked(msg)
                return
            for sub in targets:
                sub.enqueue(msg)

        fut.add_done_callback(visible)
        after_store(fut, None)

    def discard(self, holder: Holder, msg: ServerMessage, reason: str) -> None:
        """A message leaves ``holder`` undelivered (expired, maxRedelivery, discardOld).

        It moves to ``$sys.undelivered`` only when it asked to with
        ``JMS_TIBCO_PRESERVE_UNDELIVERED=true`` (EMS.md 5.8).
        """
        if msg.persistent and holder.key[0] in "qd":
            self.store.remove_message(holder.key, msg.id)
        if reason == "discardOld" or holder.name == UNDELIVERED:
            return
        if msg.field_getter(self.server_name)("JMS_TIBCO_PRESERVE_UNDELIVERED") is not True:
            return
        if msg.stored:
            msg = msg.loaded()      # its record under the old holder is being removed
        target = self.queue(UNDELIVERED)
        try:
            target.admit(msg.size)
        except LimitError as exc:
            log.warning(f"Message {msg.id} ({reason}) dropped: {exc}")
            return
        if msg.persistent:
            self.store.put_message(self.store_name(target.props), target.key, msg.id, msg.blob)
        target.enqueue(msg)

    # -- recovery ------------------------------------------------------------

    def _recovered_holder(self, key: str) -> Holder | None:
        kind, _, name = key.partition(":")
        if is_temporary(name):
            return None     # temporary destinations die with their connection
        if kind == "q":
            try:
                return self.queue(name)
            except Exception as exc:
                log.error(f"Messages of queue '{name}' not recovered: {exc}")
                return None
        return self.durables.get(name)

    def add_static_durables(self, durables: list[StaticDurable]) -> None:
        """Create the durables of durables.conf that recovery did not bring back."""
        for d in durables:
            if d.key in self.durables:
                continue
            try:
                self.subscribe(d.topic, None if not d.selector else _compile(d.selector), 0,
                               durable_key=d.key, client_id=d.client_id, durable_name=d.name,
                               selector_text=d.selector, nolocal=d.nolocal)
            except Exception as exc:
                log.error(f"{d.where}: static durable '{d.key}' not created: {exc}")

    def recover(self, state: RecoveredState) -> int:
        """Rebuild queues and durables from the store; returns messages recovered."""
        from emsfast._core.message import peek_message

        self._next_id = max(self._next_id, state.max_message_id + 1)
        for rec in state.durables:
            try:
                self.subscribe(rec.topic, None if not rec.selector else _compile(rec.selector),
                               0, durable_key=rec.key, client_id=rec.client_id,
                               durable_name=rec.name, selector_text=rec.selector,
                               nolocal=rec.nolocal)
            except Exception as exc:  # a config change may forbid it now
                log.error(f"Durable '{rec.key}' on topic '{rec.topic}' not recovered: {exc}")
        recovered = 0
        holders: dict[str, Holder | None] = {}
        last_key: str | None = None
        holder: Holder | None = None
        store = self.store
        run: list[ServerMessage] = []      # messages come in runs per holder
        run_bytes = 0
        # Plain tuple unpacking: a million NamedTuple attribute reads cost more
        # than building the messages themselves.
        for key, mid, blob, count, size, mode, prio, ts, exp in state.messages:
            if key != last_key:
                if holder is not None and run:
                    holder.add_recovered(run, run_bytes)
                run, run_bytes = [], 0
                last_key = key
                if key not in holders:
                    holders[key] = self._recovered_holder(key)
                holder = holders[key]
            if holder is None:
                continue
            if blob is None:        # index only: the body stays in the store
                msg = stored_message(store, key, mid, size, mode, prio, ts, exp)
            else:
                body_type, mode, prio, ts, exp = peek_message(blob)
                msg = ServerMessage(mid, blob, mode, prio, ts, exp, 0)
            if count:
                holder.redeliveries[mid] = count
            run.append(msg)
            run_bytes += msg.size
        if holder is not None and run:
            holder.add_recovered(run, run_bytes)
        recovered = sum(h.count for h in holders.values() if h is not None)
        seen = [h for h in holders.values() if h is not None]
        for key, found in holders.items():
            if found is None and is_temporary(key.partition(":")[2]):
                # Temporary destinations die with their connection: drop leftovers.
                self.store.remove_holder(key)
            elif found is None and key.startswith("d:"):
                # A durable record is written before any of its messages, so these
                # are left over from an unsubscribe cut short by a crash.
                log.warning(f"Dropping the messages of durable '{key[2:]}': it no longer "
                            "exists (unsubscribed before a crash).")
                self.store.remove_holder(key)
        self.recovered_holders = len(seen)
        return recovered


def _same(a: Selector | None, b: Selector | None) -> bool:
    """Whether two compiled selectors come from the same text (JMS compares text)."""
    return (a.text if a is not None else None) == (b.text if b is not None else None)


def _compile(text: str) -> Selector | None:
    from emsfast.selector import compile_selector

    # From durables.conf or the store: trusted, and accepted once already.
    return compile_selector(text, max_length=0)
