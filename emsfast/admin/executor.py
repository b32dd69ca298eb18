"""Run parsed admin commands inside the server (REQUEST op ``admin.command``).

The server side executes: the CLI only sends text and prints the reply lines.
With authorization enabled only administrators may run commands (the ``admin``
user, ``$admin`` members, users holding any admin permission), and each command
checks its own permission (EMS.md 4.3). Changes apply at once and are written
back to the file they belong to.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from emsfast._version import __version__
from emsfast.admin import destinations as dest_cmds
from emsfast.admin.commands import LOCAL_COMMANDS, Command, parse_command
from emsfast.auth.passwords import mangle
from emsfast.config.security import (
    AclEntry,
    check_name,
    check_perms,
    format_acl,
)
from emsfast.config.tibemsd import check_rules, parse_parameter
from emsfast.config.writeback import ConfigText, set_assignment
from emsfast.errors import (
    ConfigError,
    EmsfastError,
    InternalServerError,
    InvalidError,
    NotAllowedError,
    NotFoundError,
    StandbyError,
)
from emsfast.log import Tracer, log, parse_trace

if TYPE_CHECKING:
    from emsfast.server.connection import ClientConnection
    from emsfast.server.server import Server

Lines = list[str]
Handler = Callable[["ClientConnection", Command], "Lines | Awaitable[Lines]"]

_STARTED = time.time()
# Parameters ``set server`` may change at run time; the rest need a restart.
RUNTIME_PARAMS = frozenset({
    "password", "authorization", "log_trace", "console_trace", "max_connections",
    "max_msg_memory", "handshake_timeout", "client_heartbeat_server",
    "server_timeout_client_connection", "server_heartbeat_client",
    "client_timeout_server_connection", "npsend_check_mode", "max_preauth_bytes",
    "max_selector_length", "max_client_pending_bytes", "max_client_objects",
})
# Commands whose text carries a password: logged without it.
_SECRET = frozenset({"create user", "set password", "set server"})


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> Lines:
    """Left-aligned columns, as tibemsadmin prints its lists."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers).rstrip()] + [fmt.format(*r).rstrip() for r in cells]


def required_permission(cmd: Command) -> tuple[str | None, str | None, str | None]:
    """(global admin permission, destination kind, destination name) ``cmd`` needs."""
    args = cmd.args
    name = cmd.name
    if name in ("show server", "show state", "commit", "autocommit"):
        return None, None, None
    if name in ("grant", "revoke"):
        perm = "change-admin-acl" if args["kind"] == "admin" else "change-acl"
        return perm, None, None
    if name == "showacl":
        return ("view-admin-acl" if args["kind"] == "admin" else "view-acl"), None, None
    fixed = _PERMS.get(name)
    if fixed is not None:
        return fixed, None, None
    kind = args.get("kind") or name.split()[-1]
    perm = _DEST_PERMS[name.split()[0]]
    return perm, kind, args.get("name")


_PERMS = {
    "show config": "view-server", "set server": "change-server", "shutdown": "shutdown",
    "show digest": "view-server",
    "create user": "change-user", "delete user": "change-user", "set password": "change-user",
    "show users": "view-user", "show user": "view-user",
    "create group": "change-group", "delete group": "change-group",
    "add member": "change-group", "remove member": "change-group",
    "show groups": "view-group", "show group": "view-group",
    "show queues": "view-destination", "show topics": "view-destination",
    "purge all": "purge-destination",
    "show durables": "view-durable", "show durable": "view-durable",
    "delete durable": "change-durable", "purge durable": "purge-durable",
    "show connections": "view-connection", "delete connection": "change-connection",
    "show consumers": "view-destination", "show stat": "view-destination",
}
_DEST_PERMS = {
    "create": "create-destination", "delete": "delete-destination",
    "addprop": "modify-destination", "setprop": "modify-destination",
    "removeprop": "modify-destination", "show": "view-destination",
    "purge": "purge-destination",
}


async def execute(conn: ClientConnection, text: str) -> dict[str, Any]:
    """Parse, check and run one command for ``conn``; the reply is ``{"lines": [...]}``."""
    cmd = parse_command(text)
    if cmd.name in LOCAL_COMMANDS:
        raise InvalidError(f"'{cmd.name}' is a command of the admin tool, not of the server")
    server = conn.server
    authz = server.authz
    who = f"[{conn.user}@{conn.host}]"
    if authz.enabled:
        acl = authz.state.acl
        if not acl.is_administrator(conn.user):
            log.warning(f"{who}: admin command refused: not an administrator")
            raise NotAllowedError(f"user '{conn.user}' is not an administrator")
        perm, kind, name = required_permission(cmd)
        if perm is not None and not acl.may_admin(conn.user, perm, kind, name):
            log.warning(f"{who}: admin command '{cmd.name}' refused: needs {perm}")
            raise NotAllowedError(
                f"user '{conn.user}' may not run '{cmd.name}': needs the {perm} permission")
    if (state_name(server) != "active" and not cmd.name.startswith("show")
            and cmd.name != "shutdown"):
        # The standby has no store open; changes are made on the active (EMS.md 1.8).
        raise StandbyError(f"'{cmd.name}' is refused: server in {state_name(server)} mode; "
                           "make changes on the active server")
    handler = _HANDLERS[cmd.name]
    state = authz.state
    # A failed user/group/ACL change (e.g. a file that cannot be written) is undone
    # in memory too, so the server never runs with rights its files do not hold.
    saved = (copy.deepcopy(state.users), copy.deepcopy(state.groups), list(state.entries))
    try:
        try:
            result = handler(conn, cmd)
            lines = result if isinstance(result, list) else await result
        except BaseException:
            state.users, state.groups, state.entries = saved
            state.rebuild()
            raise
    except EmsfastError:
        raise
    except OSError as exc:
        # Files are written before a change is applied (or it is undone above).
        where = f" {exc.filename}" if exc.filename else ""
        log.error(f"{who}: admin: '{cmd.name}' could not save{where}: {exc.strerror}")
        raise ConfigError(f"'{cmd.name}': could not write{where}: {exc.strerror}; the "
                          "change was not applied") from None
    except Exception as exc:  # a bug must answer the admin, not hang the request
        log.exception(f"{who}: admin: '{cmd.name}' failed")
        raise InternalServerError(f"'{cmd.name}' failed: {exc!r}") from None
    if "ADMIN" in server.tracer:
        shown = cmd.name if cmd.name in _SECRET else cmd.text
        log.info(f"{who}: admin: {shown}")
    return {"lines": lines}


# -- server -----------------------------------------------------------------------


def state_name(server: Server) -> str:
    # The FT runner sets ``ft_state`` ("active"/"standby"); standalone is always active.
    return str(getattr(server, "ft_state", "active"))


def _show_server(conn: ClientConnection, cmd: Command) -> Lines:
    server = conn.server
    broker = server.broker
    pending = sum(h.count for h in broker.queues.values())
    size = sum(h.bytes for h in broker.queues.values())
    uptime = int(time.time() - _STARTED)
    return [
        f"Server: {server.name} (version: {__version__})",
        f"Hostname: {socket.gethostname()}",
        f"State: {state_name(server)}",
        *_ft_lines(server),
        f"Process Id: {os.getpid()}",
        f"Listens: {', '.join(server.config.listen)}",
        f"Authorization: {'enabled' if server.authz.enabled else 'disabled'}",
        f"Storage: {os.path.abspath(server.config.store)}",
        f"Connections: {len(server.connections)}",
        f"Queues: {len(broker.queues)}",
        f"Topics: {len(broker.topics)}",
        f"Durables: {len(broker.durables)}",
        f"Pending Messages: {pending}",
        f"Pending Message Size: {size}",
        f"Uptime: {uptime // 3600}:{uptime // 60 % 60:02d}:{uptime % 60:02d}",
    ]


def _ft_lines(server: Server) -> Lines:
    if not server.config.ft_active:
        return []
    peers = sum(1 for c in server.connections.values() if c.ft_peer)
    mode = ("fully operational" if state_name(server) == "active" and peers
            else "standalone" if state_name(server) == "active" else "waiting on the active")
    return [f"FT Peer: {server.config.ft_active}", f"FT Mode: {mode}",
            f"FT Failovers: {getattr(server, 'failovers', 0)}"]


def _show_digest(conn: ClientConnection, cmd: Command) -> Lines:
    # What FT peers compare (EMS.md 1.9); `compare` in the admin tool diffs two servers.
    from emsfast.ft.digest import config_digest

    return [f"{section}: {value}" for section, value in
            config_digest(conn.server.config).items()]


def _show_state(conn: ClientConnection, cmd: Command) -> Lines:
    return [f"Server: {conn.server.name}", f"State: {state_name(conn.server)}",
            *_ft_lines(conn.server)]


_HIDDEN_CONFIG = frozenset({"extra", "source", "items", "warnings"})


def _show_config(conn: ClientConnection, cmd: Command) -> Lines:
    config = conn.server.config
    lines = [f"Configuration File: {os.path.abspath(config.path)}"]
    for f in dataclasses.fields(config):
        if f.name in _HIDDEN_CONFIG or f.name == "path":
            continue
        value = getattr(config, f.name)
        if f.name in ("password", "ssl_password", "ft_ssl_password") and value:
            value = "********"
        elif f.name == "authorization":
            value = "enabled" if conn.server.authz.enabled else "disabled"
        elif isinstance(value, list | frozenset):
            value = ",".join(sorted(value) if isinstance(value, frozenset) else value)
        elif isinstance(value, bool):
            value = "enabled" if value else "disabled"
        lines.append(f"{f.name}: {'' if value is None else value}")
    for name, value in config.extra.items():
        lines.append(f"{name}: {value}")
    return lines


def _set_server(conn: ClientConnection, cmd: Command) -> Lines:
    server = conn.server
    changes: dict[str, Any] = {}
    texts: dict[str, str] = {}
    for name, text in cmd.args["params"]:
        if text is None:
            raise InvalidError(f"set server: missing value for '{name}' (the admin tool "
                               "prompts for it when run interactively)")
        if name not in RUNTIME_PARAMS:
            raise InvalidError(f"set server: '{name}' cannot be changed at run time "
                               f"(edit {server.config.path} and restart); changeable: "
                               f"{', '.join(sorted(RUNTIME_PARAMS))}")
        try:
            value = parse_parameter(name, text)
            if name in ("log_trace", "console_trace"):
                parse_trace(text)
        except ValueError as exc:
            raise InvalidError(f"set server {name}: {exc}") from None
        changes[name] = value
        texts[name] = mangle(text) if name == "password" else text
    new_config = dataclasses.replace(server.config, **changes)
    try:
        # The rules between parameters (heartbeat pairs...): what the next start checks.
        check_rules(new_config, [])
    except ConfigError as exc:
        raise InvalidError(f"set server: {exc}") from None
    file = ConfigText.load(server.config.path)
    for name, text in texts.items():
        set_assignment(file, name, text)
    file.save()
    server.config = new_config
    if "authorization" in changes:
        server.authz.enabled = bool(changes["authorization"])
    if "log_trace" in changes:
        server.tracer = Tracer(parse_trace(texts["log_trace"]))
    return [f"Server parameter '{name}' has been set." for name in changes]


def _shutdown(conn: ClientConnection, cmd: Command) -> Lines:
    log.info(f"[{conn.user}@{conn.host}]: shutdown requested by the admin tool.")
    # Leave time for the reply to go out; SIGTERM takes the daemon's clean-stop path.
    conn.loop.call_later(0.2, os.kill, os.getpid(), signal.SIGTERM)
    return ["Server is shutting down."]


# -- users and groups -------------------------------------------------------------


async def _create_user(conn: ClientConnection, cmd: Command) -> Lines:
    name = check_name(cmd.args["name"], "user")
    await conn.server.authz.state.create_user(name, cmd.args["description"],
                                              cmd.args["password"])
    return [f"User '{name}' has been created."]


async def _delete_user(conn: ClientConnection, cmd: Command) -> Lines:
    await conn.server.authz.state.delete_user(cmd.args["name"])
    return [f"User '{cmd.args['name']}' has been deleted."]


async def _set_password(conn: ClientConnection, cmd: Command) -> Lines:
    password = cmd.args["password"]
    if password is None:
        raise InvalidError("set password: missing password (the admin tool prompts for it)")
    await conn.server.authz.state.set_password(cmd.args["name"], password)
    return [f"Password of user '{cmd.args['name']}' has been changed."]


def _show_users(conn: ClientConnection, cmd: Command) -> Lines:
    users = conn.server.authz.state.users
    return table(["User Name", "Description"],
                 [(u.name, u.description) for u in sorted(users.values(), key=lambda u: u.name)])


def _show_user(conn: ClientConnection, cmd: Command) -> Lines:
    state = conn.server.authz.state
    user = state.users.get(cmd.args["name"])
    if user is None:
        raise NotFoundError(f"user '{cmd.args['name']}' does not exist")
    groups = sorted(g.name for g in state.groups.values() if user.name in g.members)
    return [f"User: {user.name}", f"Description: {user.description}",
            f"Password: {'set' if user.password else 'not set'}",
            f"Groups: {', '.join(groups)}"]


def _create_group(conn: ClientConnection, cmd: Command) -> Lines:
    name = check_name(cmd.args["name"], "group")
    conn.server.authz.state.create_group(name, cmd.args["description"])
    return [f"Group '{name}' has been created."]


def _delete_group(conn: ClientConnection, cmd: Command) -> Lines:
    conn.server.authz.state.delete_group(cmd.args["name"])
    return [f"Group '{cmd.args['name']}' has been deleted."]


def _add_member(conn: ClientConnection, cmd: Command) -> Lines:
    members = [check_name(m, "member") for m in cmd.args["members"]]
    conn.server.authz.state.add_members(cmd.args["group"], members)
    return [f"User '{m}' has been added to group '{cmd.args['group']}'." for m in members]


def _remove_member(conn: ClientConnection, cmd: Command) -> Lines:
    conn.server.authz.state.remove_members(cmd.args["group"], cmd.args["members"])
    return [f"User '{m}' has been removed from group '{cmd.args['group']}'."
            for m in cmd.args["members"]]


def _show_groups(conn: ClientConnection, cmd: Command) -> Lines:
    groups = conn.server.authz.state.groups
    return table(["Group Name", "Members", "Description"],
                 [(g.name, len(g.members), g.description)
                  for g in sorted(groups.values(), key=lambda g: g.name)])


def _show_group(conn: ClientConnection, cmd: Command) -> Lines:
    group = conn.server.authz.state.group(cmd.args["name"])
    return [f"Group: {group.name}", f"Description: {group.description}",
            f"Members: {', '.join(group.members)}"]


# -- ACL --------------------------------------------------------------------------


def _grant_or_revoke(conn: ClientConnection, cmd: Command) -> Lines:
    state = conn.server.authz.state
    a = cmd.args
    kind, dest = a["kind"], a["dest"]
    if kind != "admin":
        dest_cmds.check_name(dest, wildcards=True)
    if a["principal"] == "*":
        gone = [e for e in state.entries if e.kind == kind and e.dest == dest]
        for entry in gone:
            state.set_entry(dataclasses.replace(entry, perms=()))
        return [f"Revoked {len(gone)} ACL entr{'y' if len(gone) == 1 else 'ies'} "
                f"on {kind} '{dest}'."]
    pkind = a["principal_kind"] or state.principal_kind(a["principal"])
    perms = check_perms(kind, a["perms"])
    key = (kind, dest, pkind, a["principal"])
    old = state.find(key)
    have = old.perms if old is not None else ()
    if cmd.name == "grant":
        new = have + tuple(p for p in perms if p not in have)
    else:
        if old is None:
            raise NotFoundError(f"no ACL entry for {pkind} '{a['principal']}' on "
                                f"{'admin' if kind == 'admin' else f'{kind} {dest!r}'}")
        new = tuple(p for p in have if p not in perms)
    entry = AclEntry(kind, dest, pkind, a["principal"], new)  # type: ignore[arg-type]
    state.set_entry(entry)
    if new:
        return [format_acl(entry)]
    return [f"No rights left for {pkind} '{a['principal']}'; the ACL entry was removed."]


def _showacl(conn: ClientConnection, cmd: Command) -> Lines:
    entries = conn.server.authz.state.entries
    kind, name = cmd.args["kind"], cmd.args.get("name")
    if kind == "admin":
        chosen = [e for e in entries if e.kind == "admin"]
    elif kind in ("user", "group"):
        chosen = [e for e in entries if e.principal_kind == kind and e.principal == name]
    else:
        chosen = [e for e in entries if e.kind == kind and e.dest == name]
    if not chosen:
        return ["No ACL entries."]
    return [format_acl(e) for e in chosen]


def _noop(conn: ClientConnection, cmd: Command) -> Lines:
    return ["Changes are written back at once (autocommit is always on)."]


_HANDLERS: dict[str, Handler] = {
    "show server": _show_server, "show state": _show_state, "show config": _show_config,
    "show digest": _show_digest,
    "set server": _set_server, "shutdown": _shutdown,
    "create user": _create_user, "delete user": _delete_user, "set password": _set_password,
    "show users": _show_users, "show user": _show_user,
    "create group": _create_group, "delete group": _delete_group,
    "add member": _add_member, "remove member": _remove_member,
    "show groups": _show_groups, "show group": _show_group,
    "grant": _grant_or_revoke, "revoke": _grant_or_revoke, "showacl": _showacl,
    "commit": _noop, "autocommit": _noop,
    **dest_cmds.HANDLERS,
}
