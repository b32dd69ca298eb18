"""Admin commands on queues, topics, durables, connections and consumers (EMS.md 6.4-6.7).

queues.conf/topics.conf changes are checked before they replace the file: the
edited text is written beside the original, loaded as the server would load it,
and only then renamed over it. The new table then replaces the running one and
existing destinations take their new properties at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from emsfast.admin.commands import Command
from emsfast.config.destinations import DestinationProps, DestinationTable, load_destinations
from emsfast.config.names import validate_destination_name, wildcard_match
from emsfast.config.syntax import split_list
from emsfast.config.writeback import (
    ConfigText,
    atomic_write,
    delete_destination,
    destination_name,
    set_destination,
)
from emsfast.consts import FRAME_ERROR
from emsfast.errors import ConfigError, ErrorCode, InUseError, InvalidError, NotFoundError
from emsfast.server.holders import Holder, Subscription

if TYPE_CHECKING:
    from emsfast.server.connection import ClientConnection
    from emsfast.server.server import Server

Lines = list[str]


def check_name(name: str, wildcards: bool) -> None:
    validate_destination_name(name, wildcards=wildcards)


def _table(server: Server, kind: str) -> DestinationTable:
    return server.queue_table if kind == "queue" else server.topic_table


def _commit(server: Server, kind: str, text: ConfigText) -> None:
    """Check the edited file by loading it, then put it in place and apply it."""
    path = text.path
    check = os.path.join(os.path.dirname(os.path.abspath(path)),
                         f".{os.path.basename(path)}.check")
    atomic_write(check, text.text())
    try:
        load_destinations(check, kind, required=True)  # type: ignore[arg-type]
    except ConfigError as exc:
        raise InvalidError(str(exc).replace(check, path)) from None
    finally:
        os.unlink(check)
    text.save()
    table = load_destinations(path, kind, required=True)  # type: ignore[arg-type]
    broker = server.broker
    if kind == "queue":
        server.queue_table = broker.queue_table = table
        for name, holder in broker.queues.items():
            props = _resolve(table, name)
            if props is not None:
                holder.props = props
    else:
        server.topic_table = broker.topic_table = table
        for name, topic in broker.topics.items():
            props = _resolve(table, name)
            if props is not None:
                topic.props = props
        for sub in {s for t in broker.topics.values() for s in t.subscriptions}:
            props = _resolve(table, sub.topic_pattern)
            if props is not None:
                sub.props = props


def _resolve(table: DestinationTable, name: str) -> DestinationProps | None:
    try:
        return table.resolve(name)
    except ConfigError:
        return None


def _own_props(raw: str) -> list[str]:
    text = raw.strip()
    if text.startswith("["):
        text = text[text.index("]") + 1:].strip()
    parts = text.split(None, 1)
    return split_list(parts[1]) if len(parts) > 1 else []


def _prop_key(prop: str) -> str:
    return prop.partition("=")[0].strip().lower()


def _create(conn: ClientConnection, cmd: Command) -> Lines:
    kind = cmd.name.split()[1]
    name = cmd.args["name"]
    check_name(name, wildcards=True)
    server = conn.server
    table = _table(server, kind)
    existing = table.get(name)
    if existing is not None and existing.path != "<built-in>":
        raise InUseError(f"{kind} '{name}' already exists")
    text = ConfigText.load(table.path)
    set_destination(text, name, ",".join(split_list(cmd.args["props"])))
    _commit(server, kind, text)
    if "*" not in name and ">" not in name:
        if kind == "queue":
            server.broker.queue(name)
        else:
            server.broker.topic(name)
    return [f"{kind.capitalize()} '{name}' has been created."]


def _delete(conn: ClientConnection, cmd: Command) -> Lines:
    kind = cmd.name.split()[1]
    name = cmd.args["name"]
    server = conn.server
    broker = server.broker
    table = _table(server, kind)
    holder: Any = broker.queues.get(name) if kind == "queue" else broker.topics.get(name)
    entry = table.get(name)
    in_file = entry is not None and destination_name(entry.raw) == name
    if holder is None and not in_file:
        raise NotFoundError(f"{kind} '{name}' does not exist")
    if holder is not None:
        users = holder.consumers if kind == "queue" else holder.subscriptions
        if users:
            raise InUseError(f"{kind} '{name}' has {len(users)} "
                             f"{'receivers' if kind == 'queue' else 'subscribers'}; "
                             "close them first")
    if in_file:
        text = ConfigText.load(table.path)
        delete_destination(text, name)
        _commit(server, kind, text)
    if holder is not None:
        if kind == "queue":
            _drop(server, holder)
            del broker.queues[name]
        else:
            del broker.topics[name]
    return [f"{kind.capitalize()} '{name}' has been deleted."]


def _drop(server: Server, holder: Holder) -> int:
    """Purge ``holder``'s ready messages, and their stored copies."""
    dropped = holder.purge()
    for msg in dropped:
        if msg.persistent:
            server.store.remove_message(holder.key, msg.id)
    return len(dropped)


def _props_cmd(conn: ClientConnection, cmd: Command) -> Lines:
    kind, name = cmd.args["kind"], cmd.args["name"]
    server = conn.server
    table = _table(server, kind)
    entry = table.get(name)
    if entry is None or entry.path == "<built-in>":
        raise NotFoundError(f"{kind} '{name}' is not in {kind}s.conf; use 'create {kind}'")
    current = _own_props(entry.raw)
    given = split_list(cmd.args["props"])
    if cmd.name == "setprop":
        props = given
    elif cmd.name == "addprop":
        keys = {_prop_key(p) for p in given}
        props = [p for p in current if _prop_key(p) not in keys] + given
    else:
        keys = {_prop_key(p) for p in given}
        missing = keys - {_prop_key(p) for p in current}
        if missing:
            raise NotFoundError(f"{kind} '{name}' has no property {sorted(missing)[0]!r}")
        props = [p for p in current if _prop_key(p) not in keys]
    text = ConfigText.load(table.path)
    set_destination(text, name, ",".join(props))
    _commit(server, kind, text)
    return [f"{kind.capitalize()} '{name}' properties: {','.join(props) or '(none)'}"]


def _describe(props: DestinationProps) -> str:
    out = [flag for flag in ("secure", "exclusive") if getattr(props, flag)]
    out.append(f"store={props.store}")
    for field, label in (("maxbytes", "maxbytes"), ("maxmsgs", "maxmsgs"),
                         ("max_redelivery", "maxRedelivery"), ("expiration_ms", "expiration"),
                         ("prefetch", "prefetch")):
        value = getattr(props, field)
        if value:
            out.append(f"{label}={value}")
    if props.overflow_policy != "default":
        out.append(f"overflowPolicy={props.overflow_policy}")
    return ",".join(out)


def _show_one(conn: ClientConnection, cmd: Command) -> Lines:
    kind = cmd.name.split()[1]
    name = cmd.args["name"]
    server = conn.server
    broker = server.broker
    table = _table(server, kind)
    entry = table.get(name)
    props = _resolve(table, name)
    holder: Any = broker.queues.get(name) if kind == "queue" else broker.topics.get(name)
    if entry is None and holder is None:
        raise NotFoundError(f"{kind} '{name}' does not exist")
    lines = [f"{kind.capitalize()}: {name}",
             f"Type: {'static' if entry is not None else 'dynamic'}",
             f"Properties: {','.join(_own_props(entry.raw)) if entry else ''}"]
    if props:
        lines.append(f"Effective: {_describe(props)}")
    if kind == "queue":
        q: Holder | None = holder
        lines += [f"Receivers: {len(q.consumers) if q else 0}",
                  f"Pending Msgs: {q.count if q else 0}",
                  f"Pending Size: {q.bytes if q else 0}",
                  f"Received Msgs: {q.received_total if q else 0}",
                  f"Delivered Msgs: {q.delivered_total if q else 0}"]
    else:
        subs = holder.subscriptions if holder else []
        lines += [f"Subscribers: {len(subs)}",
                  f"Durables: {sum(1 for s in subs if s.durable)}",
                  f"Pending Msgs: {sum(s.count for s in subs)}",
                  f"Published Msgs: {holder.published_total if holder else 0}"]
    return lines


def _matches(pattern: str | None, name: str) -> bool:
    return pattern is None or pattern == name or wildcard_match(pattern, name)


def _show_list(conn: ClientConnection, cmd: Command) -> Lines:
    from emsfast.admin.executor import table as fmt

    kind = cmd.name.split()[1][:-1]
    server = conn.server
    broker = server.broker
    dtable = _table(server, kind)
    holders: dict[str, Any] = dict(broker.queues if kind == "queue" else broker.topics)
    names = [e.name for e in dtable.entries] + [n for n in holders if dtable.get(n) is None]
    rows = []
    for name in names:
        if not _matches(cmd.args["pattern"], name):
            continue
        static = dtable.get(name) is not None
        h = holders.get(name)
        props = _resolve(dtable, name) if static or h else None
        secure = "+" if props is not None and props.secure else "-"
        if kind == "queue":
            rows.append((("" if static else "*") + name, secure,
                         len(h.consumers) if h else 0, h.count if h else 0, h.bytes if h else 0))
        else:
            subs = h.subscriptions if h else []
            rows.append((("" if static else "*") + name, secure, len(subs),
                         sum(1 for s in subs if s.durable), sum(s.count for s in subs)))
    headers = (["Queue Name", "Secure", "Rcvrs", "Msgs", "Size"] if kind == "queue"
               else ["Topic Name", "Secure", "Subs", "Durs", "Msgs"])
    return fmt(headers, rows)


def _purge(conn: ClientConnection, cmd: Command) -> Lines:
    server = conn.server
    broker = server.broker
    if cmd.name == "purge all":
        kind, pattern = cmd.args["kind"], cmd.args["pattern"]
        names = broker.queues if kind == "queue" else broker.topics
        total = 0
        for name in list(names):
            if _matches(pattern, name):
                total += _purge_one(server, kind, name)
        return [f"Purged {total} messages from {kind}s."]
    kind = cmd.name.split()[1]
    name = cmd.args["name"]
    exists = name in (broker.queues if kind == "queue" else broker.topics)
    if not exists and _table(server, kind).get(name) is None and (
            "*" in name or ">" in name or _resolve(_table(server, kind), name) is None):
        raise NotFoundError(f"{kind} '{name}' does not exist")
    count = _purge_one(server, kind, name) if exists else 0
    return [f"Purged {count} messages from {kind} '{name}'."]


def _purge_one(server: Server, kind: str, name: str) -> int:
    broker = server.broker
    if kind == "queue":
        return _drop(server, broker.queues[name])
    return sum(_drop(server, sub) for sub in broker.topics[name].subscriptions)


# -- durables ---------------------------------------------------------------------


def _find_durable(server: Server, name: str, client_id: str | None = None) -> Subscription:
    durables = server.broker.durables
    key = f"{client_id}:{name}" if client_id else name
    sub = durables.get(key)
    if sub is None and client_id is None:
        found = [s for k, s in durables.items() if k.endswith(":" + name)]
        if len(found) > 1:
            raise InvalidError(f"durable '{name}' exists for several client ids; name one")
        sub = found[0] if found else None
    if sub is None:
        raise NotFoundError(f"durable '{key}' does not exist")
    return sub


def _show_durables(conn: ClientConnection, cmd: Command) -> Lines:
    from emsfast.admin.executor import table as fmt

    rows = []
    for key, sub in sorted(conn.server.broker.durables.items()):
        if not _matches(cmd.args["pattern"], sub.topic_pattern):
            continue
        client_id, _, name = key.rpartition(":")
        rows.append((sub.topic_pattern, name, client_id, "N",
                     "online" if sub.consumers else "offline", sub.count, sub.bytes))
    return fmt(["Topic Name", "Durable", "Client ID", "Shared", "User", "Msgs", "Size"], rows)


def _show_durable(conn: ClientConnection, cmd: Command) -> Lines:
    sub = _find_durable(conn.server, cmd.args["name"])
    client_id, _, name = (sub.durable or "").rpartition(":")
    return [f"Durable Subscriber: {name}", f"Client ID: {client_id}",
            f"Topic: {sub.topic_pattern}",
            f"Status: {'online' if sub.consumers else 'offline'}",
            f"NoLocal: {'yes' if sub.nolocal_conn else 'no'}",
            f"Pending Msgs: {sub.count}", f"Pending Size: {sub.bytes}"]


def _delete_durable(conn: ClientConnection, cmd: Command) -> Lines:
    sub = _find_durable(conn.server, cmd.args["name"], cmd.args["client_id"])
    assert sub.durable is not None
    conn.server.broker.unsubscribe(sub.durable)
    return [f"Durable '{sub.durable}' has been deleted."]


def _purge_durable(conn: ClientConnection, cmd: Command) -> Lines:
    sub = _find_durable(conn.server, cmd.args["name"])
    return [f"Purged {_drop(conn.server, sub)} messages from durable '{sub.durable}'."]


# -- connections and consumers ----------------------------------------------------


def _show_connections(conn: ClientConnection, cmd: Command) -> Lines:
    from emsfast.admin.executor import table as fmt

    f = cmd.args["filters"]
    rows = []
    for c in sorted(conn.server.connections.values(), key=lambda c: c.conn_id):
        if f.get("user") and c.user != f["user"] or f.get("host") and c.host != f["host"]:
            continue
        rows.append((c.conn_id, c.user, c.host, c.client_id or "", len(c.sessions),
                     len(c.producers), len(c.consumers)))
    return fmt(["ID", "User", "Host", "Client ID", "Sess", "Prod", "Cons"], rows)


def _delete_connection(conn: ClientConnection, cmd: Command) -> Lines:
    target = conn.server.connections.get(cmd.args["id"])
    if target is None:
        raise NotFoundError(f"connection {cmd.args['id']} does not exist")
    if target is conn:
        raise InvalidError("cannot delete the connection this command came on")
    target.enc.control(FRAME_ERROR, {"rid": None, "code": int(ErrorCode.NOT_ALLOWED),
                                     "text": "connection deleted by an administrator"})
    target.close()
    return [f"Connection {cmd.args['id']} has been deleted."]


def _show_consumers(conn: ClientConnection, cmd: Command) -> Lines:
    from emsfast.admin.executor import table as fmt

    f = cmd.args["filters"]
    rows = []
    for c in sorted(conn.server.connections.values(), key=lambda c: c.conn_id):
        if f.get("user") and c.user != f["user"]:
            continue
        for consumer in c.consumers.values():
            holder = consumer.holder
            kind = "T" if isinstance(holder, Subscription) else "Q"
            dest = holder.topic_pattern if isinstance(holder, Subscription) else holder.name
            if f.get("queue") and (kind != "Q" or dest != f["queue"]):
                continue
            if f.get("topic") and (kind != "T" or dest != f["topic"]):
                continue
            durable = holder.durable if isinstance(holder, Subscription) else None
            rows.append((consumer.id, c.conn_id, c.user, kind, dest, durable or "",
                         consumer.prefetch))
    return fmt(["ID", "Conn", "User", "T", "Destination", "Durable", "Prefetch"], rows)


def _show_stat(conn: ClientConnection, cmd: Command) -> Lines:
    server = conn.server
    broker = server.broker
    kind = cmd.args.get("kind")
    if kind is None:
        queues = broker.queues.values()
        return [f"Connections: {len(server.connections)}",
                f"Queues: {len(broker.queues)}", f"Topics: {len(broker.topics)}",
                f"Durables: {len(broker.durables)}",
                f"Inbound Msgs: {sum(q.received_total for q in queues)}",
                f"Outbound Msgs: {sum(q.delivered_total for q in queues)}",
                f"Pending Msgs: {sum(q.count for q in queues)}"]
    name = cmd.args["name"]
    if kind == "queue":
        q = broker.queues.get(name)
        if q is None:
            raise NotFoundError(f"queue '{name}' does not exist")
        return [f"Queue: {name}", f"Inbound Msgs: {q.received_total}",
                f"Outbound Msgs: {q.delivered_total}", f"Pending Msgs: {q.count}"]
    t = broker.topics.get(name)
    if t is None:
        raise NotFoundError(f"topic '{name}' does not exist")
    return [f"Topic: {name}", f"Inbound Msgs: {t.published_total}",
            f"Outbound Msgs: {sum(s.delivered_total for s in t.subscriptions)}",
            f"Pending Msgs: {sum(s.count for s in t.subscriptions)}"]


HANDLERS: dict[str, Callable[[ClientConnection, Command], Lines]] = {
    "create queue": _create, "create topic": _create,
    "delete queue": _delete, "delete topic": _delete,
    "addprop": _props_cmd, "setprop": _props_cmd, "removeprop": _props_cmd,
    "show queue": _show_one, "show topic": _show_one,
    "show queues": _show_list, "show topics": _show_list,
    "purge queue": _purge, "purge topic": _purge, "purge all": _purge,
    "show durables": _show_durables, "show durable": _show_durable,
    "delete durable": _delete_durable, "purge durable": _purge_durable,
    "show connections": _show_connections, "delete connection": _delete_connection,
    "show consumers": _show_consumers, "show stat": _show_stat,
}
