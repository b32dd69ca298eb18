"""Per-connection objects: sessions, producers, consumers, unacked deliveries."""

# Delivery (a message handed out and not yet acknowledged) is a core type.

from __future__ import annotations

from typing import TYPE_CHECKING

from emsfast._core.dispatch import Delivery
from emsfast.consts import ACK_NONE, ACK_TRANSACTED
from emsfast.server.holders import Holder, Subscription
from emsfast.server.messages import ServerMessage

if TYPE_CHECKING:
    from emsfast.selector import Selector
    from emsfast.server.broker import Topic
    from emsfast.server.connection import ClientConnection


class Session:
    __slots__ = ("id", "ack_mode", "transacted", "no_ack", "unacked", "tx_acked",
                 "tx_sends", "consumers", "producers")

    def __init__(self, sid: int, ack_mode: int) -> None:
        self.id = sid
        self.ack_mode = ack_mode
        self.transacted = ack_mode == ACK_TRANSACTED
        self.no_ack = ack_mode == ACK_NONE
        self.unacked: dict[int, Delivery] = {}
        # Transacted sessions: deliveries the application consumed, acknowledged
        # only at commit; sends held until commit.
        self.tx_acked: list[Delivery] = []
        self.tx_sends: list[tuple[Producer, int, ServerMessage, bool]] = []
        self.consumers: dict[int, Consumer] = {}
        self.producers: dict[int, Producer] = {}


class Producer:
    __slots__ = ("id", "session", "queue", "topic")

    def __init__(self, pid: int, session: Session, queue: Holder | None,
                 topic: Topic | None) -> None:
        self.id = pid
        self.session = session
        self.queue = queue
        self.topic = topic


class Consumer:
    """A consumer attached to a holder (a queue, or its topic subscription)."""

    __slots__ = ("id", "conn", "session", "holder", "credit", "prefetch", "selector")

    def __init__(self, cid: int, conn: ClientConnection, session: Session, holder: Holder,
                 prefetch: int, selector: Selector | None) -> None:
        self.id = cid
        self.conn = conn
        self.session = session
        self.holder = holder
        self.prefetch = prefetch
        self.credit = prefetch
        # Only queue consumers filter at dispatch; a subscription filters at publish.
        self.selector = None if isinstance(holder, Subscription) else selector

    @property
    def writable(self) -> bool:
        return not self.conn.paused

    def deliver(self, holder: Holder, msg: ServerMessage, count: int) -> None:
        self.credit -= 1
        self.conn.deliver(self, holder, msg, count)

    def backlog_overflow(self, holder: Holder) -> None:
        self.conn.backlog_overflow(holder)
