"""Temporary queues and topics (EMS.md 5.9): made by a connection, consumed only
by it, deleted when it closes or breaks.

The client names them ``$TMP$.<server>.<conn_id>.<seq>`` itself, so creating one
never waits for a round trip (protocol.md §4); the server checks the prefix and
keeps the owner. Properties come from ``$TMP$.>`` entries like any destination's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emsfast.config.destinations import TEMP_PREFIX
from emsfast.config.names import validate_destination_name
from emsfast.errors import InUseError, InvalidError, NotAllowedError, NotFoundError
from emsfast.server.holders import Holder

if TYPE_CHECKING:
    from emsfast.server.broker import Broker
    from emsfast.server.connection import ClientConnection

Result = dict[str, Any] | None


def is_temporary(name: str) -> bool:
    return name.startswith(TEMP_PREFIX)


class Temporaries:
    """Which connection owns each temporary destination."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.owner: dict[str, int] = {}             # "q:name" / "t:name" -> conn id
        self.by_conn: dict[int, set[str]] = {}

    def create(self, conn_id: int, kind: str, name: str) -> None:
        prefix = f"{TEMP_PREFIX}{self.broker.server_name}.{conn_id}."
        if not name.startswith(prefix) or len(name) == len(prefix):
            raise InvalidError(f"temporary {kind} name {name!r} must start with {prefix!r}")
        validate_destination_name(name, wildcards=False)
        key = f"{kind[0]}:{name}"
        if key in self.owner:
            raise InUseError(f"temporary {kind} '{name}' already exists")
        broker = self.broker
        props = broker.resolve_props(kind, name)
        if kind == "queue":
            broker.queues[name] = Holder(broker, key, name, props)
        else:
            broker.add_topic(name, props)
        self.owner[key] = conn_id
        self.by_conn.setdefault(conn_id, set()).add(key)

    def check_consumer(self, conn_id: int, kind: str, name: str) -> None:
        """Only the creating connection may consume (JMS, EMS.md 5.9)."""
        if not is_temporary(name):
            return
        owner = self.owner.get(f"{kind[0]}:{name}")
        if owner is None:
            raise NotFoundError(f"temporary {kind} '{name}' does not exist")
        if owner != conn_id:
            raise NotAllowedError(
                f"temporary {kind} '{name}' belongs to another connection; only it may consume"
            )

    def delete(self, conn_id: int, kind: str, name: str) -> None:
        key = f"{kind[0]}:{name}"
        owner = self.owner.get(key)
        if owner is None:
            raise NotFoundError(f"temporary {kind} '{name}' does not exist")
        if owner != conn_id:
            raise NotAllowedError(f"temporary {kind} '{name}' belongs to another connection")
        self._drop(key, force=False)

    def connection_closed(self, conn_id: int) -> None:
        for key in self.by_conn.pop(conn_id, ()):
            self._drop(key, force=True)

    def _drop(self, key: str, force: bool) -> None:
        broker = self.broker
        kind, _, name = key.partition(":")
        if kind == "q":
            holder = broker.queues.get(name)
            if holder is not None:
                if holder.consumers and not force:
                    raise InUseError(f"temporary queue '{name}' has an active consumer")
                del broker.queues[name]
                holder.deleted = True
                for msg in holder.purge():
                    if msg.persistent:
                        broker.store.remove_message(key, msg.id)
        else:
            topic = broker.topics.get(name)
            if topic is not None:
                own = [s for s in topic.subscriptions if s.topic_pattern == name]
                if not force and any(s.consumers for s in own):
                    raise InUseError(f"temporary topic '{name}' has an active consumer")
                del broker.topics[name]
                topic.deleted = True
                for sub in own:
                    broker.drop_subscription(sub)
        owner = self.owner.pop(key, None)
        if owner is not None and not force:
            keys = self.by_conn.get(owner)
            if keys is not None:
                keys.discard(key)


# -- REQUEST handlers (protocol.md §4) ---------------------------------------------

def _kind_and_name(req: dict[str, Any]) -> tuple[str, str]:
    kind = req.get("dest_type")
    if kind not in ("queue", "topic"):
        raise InvalidError(f"dest_type must be 'queue' or 'topic', got {kind!r}")
    name = req.get("dest")
    if not isinstance(name, str) or not name:
        raise InvalidError(f"'dest' must be a non-empty string, got {name!r}")
    return str(kind), name


def temp_create(conn: ClientConnection, req: dict[str, Any]) -> Result:
    kind, name = _kind_and_name(req)
    conn.broker.temporaries.create(conn.conn_id, kind, name)
    return None


def temp_delete(conn: ClientConnection, req: dict[str, Any]) -> Result:
    kind, name = _kind_and_name(req)
    conn.broker.temporaries.delete(conn.conn_id, kind, name)
    return None


HANDLERS = {
    "temp.create": temp_create,
    "temp.delete": temp_delete,
}
