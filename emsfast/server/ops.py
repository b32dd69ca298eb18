"""REQUEST handlers (docs/protocol.md §4): sessions, producers, consumers,
transactions. Each takes the connection and the decoded request and returns the
reply fields, or an awaitable of them; errors are raised as EmsfastError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from emsfast._core.dispatch import Delivery
from emsfast.consts import ACK_MODES, DEFAULT_QUEUE_PREFETCH, DEFAULT_TOPIC_PREFETCH
from emsfast.errors import (
    EmsfastError,
    InvalidError,
    LimitError,
    NotFoundError,
    TransactionRolledBackError,
)
from emsfast.server import browsers, temporary
from emsfast.server.holders import Holder, Subscription
from emsfast.server.messages import ServerMessage
from emsfast.server.session import Consumer, Producer, Session

if TYPE_CHECKING:
    from emsfast.server.connection import ClientConnection

Result = dict[str, Any] | None
_VALID_ACK_MODES = frozenset(ACK_MODES.values()) | {0}


def _u32(req: dict[str, Any], key: str) -> int:
    value = req[key]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
        raise InvalidError(f"'{key}' must be an unsigned 32-bit integer, got {value!r}")
    return value


def _str(req: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = req.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidError(f"'{key}' must be a non-empty string, got {value!r}")
    return value


def _session(conn: ClientConnection, req: dict[str, Any]) -> Session:
    sid = _u32(req, "session")
    session = conn.sessions.get(sid)
    if session is None:
        raise NotFoundError(f"session {sid} does not exist")
    return session


def _dest_type(req: dict[str, Any]) -> str:
    kind = req.get("dest_type")
    if kind not in ("queue", "topic"):
        raise InvalidError(f"dest_type must be 'queue' or 'topic', got {kind!r}")
    return str(kind)


# -- sessions -------------------------------------------------------------------

def session_create(conn: ClientConnection, req: dict[str, Any]) -> Result:
    sid = _u32(req, "session")
    ack_mode = req.get("ack_mode", 1)
    if ack_mode not in _VALID_ACK_MODES:
        raise InvalidError(f"unknown ack_mode {ack_mode!r}")
    if sid in conn.sessions:
        raise InvalidError(f"session {sid} already exists")
    conn.sessions[sid] = Session(sid, ack_mode)
    return None


def close_session(conn: ClientConnection, session: Session) -> None:
    """Close every consumer and producer of ``session``; unacked go back."""
    conn.sessions.pop(session.id, None)
    session.tx_sends.clear()
    returned = list(session.unacked.values()) + session.tx_acked
    session.unacked.clear()
    session.tx_acked = []
    for consumer in list(session.consumers.values()):
        _detach(conn, consumer)
    for pid in list(session.producers):
        conn.producers.pop(pid, None)
    session.producers.clear()
    conn.redeliver(returned)


def session_close(conn: ClientConnection, req: dict[str, Any]) -> Result:
    close_session(conn, _session(conn, req))
    return None


def session_recover(conn: ClientConnection, req: dict[str, Any]) -> Result:
    session = _session(conn, req)
    # Tags up to last_tag were issued before this recover: the client drops
    # those still in flight, since they come back as redeliveries.
    last_tag = conn.last_tag()
    returned = list(session.unacked.values())
    session.unacked.clear()
    conn.redeliver(returned)
    return {"last_tag": last_tag}


def session_rollback(conn: ClientConnection, req: dict[str, Any]) -> Result:
    session = _session(conn, req)
    if not session.transacted:
        raise InvalidError(f"session {session.id} is not transacted")
    _rollback(conn, session)
    return None


def _rollback(conn: ClientConnection, session: Session) -> None:
    session.tx_sends.clear()
    returned, session.tx_acked = session.tx_acked, []
    conn.redeliver(returned)


def session_commit(conn: ClientConnection, req: dict[str, Any]) -> Any:
    session = _session(conn, req)
    if not session.transacted:
        raise InvalidError(f"session {session.id} is not transacted")
    sends, session.tx_sends = session.tx_sends, []
    # Reserve room for every queued send first so a limit fails the whole
    # transaction instead of applying half of it.
    admitted: list[tuple[Holder, ServerMessage]] = []
    for producer, _seq, msg, _confirm in sends:
        if producer.queue is None:
            continue
        try:
            producer.queue.admit(msg.size)
        except LimitError as exc:
            for holder, reserved in admitted:
                holder.acked(reserved)
            _rollback(conn, session)
            raise TransactionRolledBackError(f"transaction rolled back: {exc}") from exc
        admitted.append((producer.queue, msg))
    acks, session.tx_acked = session.tx_acked, []
    store = conn.store
    futures: list[asyncio.Future[None]] = []
    visible: list[tuple[Holder, Any]] = []
    for producer, _seq, msg, _confirm in sends:
        if producer.queue is not None:
            holder = producer.queue
            if msg.persistent:
                futures.append(store.put_message(conn.broker.store_name(holder.props),
                                                 holder.key, msg.id, msg.blob))
            visible.append((holder, msg))
        else:
            assert producer.topic is not None
            conn.broker.route_topic(producer.topic, msg,
                                    lambda fut, err: futures.append(fut) if fut else None)
    for d in acks:
        d.holder.acked(d.msg)
        if d.msg.persistent:
            futures.append(store.remove_message(d.holder.key, d.msg.id))
    if not futures:
        for holder, msg in visible:
            holder.enqueue(msg)
        return None

    async def durable() -> Result:
        try:
            await asyncio.gather(*set(futures))
        except Exception as exc:
            for holder, msg in visible:
                holder.acked(msg)
            raise TransactionRolledBackError(f"commit failed in the store: {exc}") from exc
        for holder, msg in visible:
            holder.enqueue(msg)
        return None

    return durable()


# -- producers ------------------------------------------------------------------

def producer_create(conn: ClientConnection, req: dict[str, Any]) -> Result:
    session = _session(conn, req)
    pid = _u32(req, "producer")
    kind = _dest_type(req)
    name = _str(req, "dest")
    assert name is not None
    if pid in conn.producers:
        raise InvalidError(f"producer {pid} already exists")
    conn.server.authz.check_producer(conn, kind, name)
    if kind == "queue":
        producer = Producer(pid, session, conn.broker.queue(name), None)
    else:
        producer = Producer(pid, session, None, conn.broker.topic(name))
    conn.producers[pid] = producer
    session.producers[pid] = producer
    return None


def producer_close(conn: ClientConnection, req: dict[str, Any]) -> Result:
    pid = _u32(req, "producer")
    producer = conn.producers.pop(pid, None)
    if producer is not None:
        producer.session.producers.pop(pid, None)
    return None


# -- consumers ------------------------------------------------------------------

def consumer_create(conn: ClientConnection, req: dict[str, Any]) -> Result:
    session = _session(conn, req)
    cid = _u32(req, "consumer")
    kind = _dest_type(req)
    name = _str(req, "dest")
    assert name is not None
    if cid in conn.consumers:
        raise InvalidError(f"consumer {cid} already exists")
    selector_text = _str(req, "selector", required=False)
    selector = conn.compile_selector(selector_text) if selector_text else None
    durable = _str(req, "durable", required=False)
    nolocal = bool(req.get("nolocal", False))
    shared = bool(req.get("shared", False))
    subscription = _str(req, "subscription", required=False)
    if shared and (durable is None) == (subscription is None):
        raise InvalidError("a shared consumer names either 'durable' or 'subscription'")
    if subscription is not None and not shared:
        raise InvalidError("'subscription' is for shared consumers ('shared': true)")
    conn.server.authz.check_consumer(conn, kind, name, durable)
    broker = conn.broker
    broker.temporaries.check_consumer(conn.conn_id, kind, name)
    holder: Holder
    if kind == "queue":
        if durable is not None or shared:
            raise InvalidError("durable and shared subscriptions are for topics, not queues")
        holder = broker.queue(name)
        default_prefetch = DEFAULT_QUEUE_PREFETCH
    else:
        if durable is not None and temporary.is_temporary(name):
            raise InvalidError("a temporary topic cannot have durable subscriptions")
        durable_key = conn.durable_key(durable) if durable is not None else None
        shared_key = conn.durable_key(subscription) if subscription is not None else None
        holder = broker.subscribe(
            name, selector, conn.conn_id if nolocal else 0, durable_key=durable_key,
            client_id=conn.client_id, durable_name=durable, selector_text=selector_text,
            nolocal=nolocal, shared=shared, shared_key=shared_key)
        default_prefetch = DEFAULT_TOPIC_PREFETCH
        if isinstance(holder, Subscription) and holder.durable is None and not shared:
            holder.backlog_limit = conn.server.config.max_client_pending_bytes
    prefetch = holder.props.prefetch or default_prefetch
    if prefetch < 0:        # prefetch=none: one at a time (fetch on receive)
        prefetch = 1
    consumer = Consumer(cid, conn, session, holder, prefetch, selector)
    conn.consumers[cid] = consumer
    session.consumers[cid] = consumer
    holder.add_consumer(consumer)
    # The reply must precede the first DELIVER, so dispatch on the next turn.
    conn.loop.call_soon(holder.dispatch)
    return {"prefetch": prefetch}


def _detach(conn: ClientConnection, consumer: Consumer,
            keep: frozenset[int] = frozenset()) -> list[Delivery]:
    """Remove ``consumer``; return its unacked deliveries (not yet redelivered).

    Tags in ``keep`` were taken by the application and stay with the session
    until it acknowledges, recovers or closes.
    """
    conn.consumers.pop(consumer.id, None)
    session = consumer.session
    session.consumers.pop(consumer.id, None)
    holder = consumer.holder
    holder.remove_consumer(consumer)
    # A shared non-durable subscription lives while any consumer is attached;
    # what this consumer had not acknowledged goes to the others.
    if (isinstance(holder, Subscription) and holder.durable is None
            and not (holder.shared_key is not None and holder.consumers)):
        conn.broker.drop_subscription(holder)
        for tag in [t for t, d in session.unacked.items() if d.consumer is consumer]:
            del session.unacked[tag]
        return []
    mine = [t for t, d in session.unacked.items() if d.consumer is consumer and t not in keep]
    return [session.unacked.pop(t) for t in mine]


def consumer_close(conn: ClientConnection, req: dict[str, Any]) -> Result:
    cid = _u32(req, "consumer")
    keep = req.get("keep") or []
    if not isinstance(keep, list) or not all(isinstance(t, int) for t in keep):
        raise InvalidError(f"'keep' must be a list of delivery tags, got {keep!r}")
    consumer = conn.consumers.get(cid)
    if consumer is not None:
        conn.redeliver(_detach(conn, consumer, frozenset(keep)))
    return None


def durable_unsubscribe(conn: ClientConnection, req: dict[str, Any]) -> Result:
    name = _str(req, "name")
    assert name is not None
    conn.broker.unsubscribe(conn.durable_key(name))
    return None


def ping(conn: ClientConnection, req: dict[str, Any]) -> Result:
    return None


def admin_command(conn: ClientConnection, req: dict[str, Any]) -> Any:
    from emsfast.admin.executor import execute

    text = _str(req, "command")
    assert text is not None
    return execute(conn, text)


HANDLERS: dict[str, Callable[[ClientConnection, dict[str, Any]], Any]] = {
    "session.create": session_create,
    "session.close": session_close,
    "session.recover": session_recover,
    "session.commit": session_commit,
    "session.rollback": session_rollback,
    "producer.create": producer_create,
    "producer.close": producer_close,
    "consumer.create": consumer_create,
    "consumer.close": consumer_close,
    "durable.unsubscribe": durable_unsubscribe,
    "ping": ping,
    "admin.command": admin_command,
}

# JMS features kept in their own modules so this one stays small.
HANDLERS.update(temporary.HANDLERS)
HANDLERS.update(browsers.HANDLERS)

__all__ = ["HANDLERS", "EmsfastError", "close_session"]
