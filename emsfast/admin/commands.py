"""The tibemsadmin command grammar (EMS.md 6), shared by the CLI and the server.

``parse_command`` turns one line into a ``Command`` (a canonical name such as
``create queue`` and its arguments) or raises ``CommandSyntaxError`` saying what
was expected, with the command's usage line. It never touches a server: the CLI
parses to reject typos before sending, the server parses again before running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emsfast.config.syntax import split_list
from emsfast.errors import InvalidError

# Canonical name -> usage; the order is the order of ``help``.
USAGE: dict[str, str] = {
    "show server": "info | show server",
    "show state": "show state",
    "show digest": "show digest",
    "compare": "compare URL [USER PASSWORD]   (lists configuration differences)",
    "show config": "show config",
    "set server": "set server PARAM=VALUE [PARAM=VALUE ...]",
    "shutdown": "shutdown",
    "create user": 'create user NAME ["DESCRIPTION"] [password=PASSWORD]',
    "delete user": "delete user NAME",
    "set password": "set password NAME [PASSWORD]",
    "show users": "show users",
    "show user": "show user NAME",
    "create group": 'create group NAME ["DESCRIPTION"]',
    "delete group": "delete group NAME",
    "add member": "add member GROUP USER[,USER...]",
    "remove member": "remove member GROUP USER[,USER...]",
    "show groups": "show groups",
    "show group": "show group NAME",
    "create queue": "create queue NAME [PROPERTIES]",
    "create topic": "create topic NAME [PROPERTIES]",
    "delete queue": "delete queue NAME",
    "delete topic": "delete topic NAME",
    "addprop": "addprop queue|topic NAME PROPERTIES",
    "setprop": "setprop queue|topic NAME PROPERTIES",
    "removeprop": "removeprop queue|topic NAME PROPERTIES",
    "show queue": "show queue NAME",
    "show topic": "show topic NAME",
    "show queues": "show queues [PATTERN]",
    "show topics": "show topics [PATTERN]",
    "purge queue": "purge queue NAME",
    "purge topic": "purge topic NAME",
    "purge all": "purge all queues|topics [PATTERN]",
    "grant": "grant queue|topic NAME user=U|group=G PERMS | grant admin user=U|group=G PERMS",
    "revoke": "revoke queue|topic NAME user=U|group=G PERMS|* | revoke admin user=U|group=G PERMS",
    "showacl": "showacl queue|topic NAME | showacl admin | showacl user|group NAME",
    "show durables": "show durables [PATTERN]",
    "show durable": "show durable NAME",
    "delete durable": "delete durable NAME [CLIENTID]",
    "purge durable": "purge durable NAME",
    "show connections": "show connections [user=U] [host=H]",
    "delete connection": "delete connection ID",
    "show consumers": "show consumers [queue=NAME|topic=NAME] [user=U]",
    "show stat": "show stat [queue|topic NAME]",
    "commit": "commit  (changes are always written at once)",
    "autocommit": "autocommit [on|off]  (always on)",
    "connect": "connect [URL] [USER PASSWORD]",
    "disconnect": "disconnect",
    "help": "help",
    "exit": "exit | quit",
}
# Handled by the CLI itself, never sent to the server.
LOCAL_COMMANDS = frozenset({"help", "exit", "connect", "disconnect", "compare"})
_SHOW_SIMPLE = {"server", "state", "config", "users", "groups", "digest"}
_SHOW_ONE = {"user", "group", "queue", "topic", "durable"}
_SHOW_PATTERN = {"queues", "topics", "durables"}


class CommandSyntaxError(InvalidError):
    """A command line that does not follow the grammar (not an error of the server)."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    text: str = ""


@dataclass(slots=True)
class _Tokens:
    text: str
    spans: list[tuple[int, int]]  # (start, end) of each token in text

    def __len__(self) -> int:
        return len(self.spans)

    def word(self, i: int) -> str:
        """Token ``i`` with surrounding double quotes removed."""
        start, end = self.spans[i]
        tok = self.text[start:end]
        return tok[1:-1] if len(tok) >= 2 and tok[0] == tok[-1] == '"' else tok

    def key(self, i: int) -> str:
        return self.word(i).lower() if i < len(self.spans) else ""

    def rest(self, i: int) -> str:
        """The raw text from token ``i`` to the end (quotes kept)."""
        return self.text[self.spans[i][0]:].strip() if i < len(self.spans) else ""


def _tokenize(text: str) -> _Tokens:
    spans: list[tuple[int, int]] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        quoted = False
        while i < n and (quoted or not text[i].isspace()):
            if text[i] == '"':
                quoted = not quoted
            i += 1
        if quoted:
            raise CommandSyntaxError(f"unterminated quote in {text[start:]!r}")
        spans.append((start, i))
    return _Tokens(text, spans)


def _fail(name: str, problem: str) -> CommandSyntaxError:
    return CommandSyntaxError(f"{problem}; usage: {USAGE[name]}")


def _need(tokens: _Tokens, i: int, name: str, what: str) -> str:
    if i >= len(tokens):
        raise _fail(name, f"missing {what}")
    return tokens.word(i)


def _no_more(tokens: _Tokens, i: int, name: str) -> None:
    if i < len(tokens):
        raise _fail(name, f"unexpected {tokens.word(i)!r}")


def _kind(tokens: _Tokens, i: int, name: str) -> str:
    kind = tokens.key(i)
    if kind not in ("queue", "topic"):
        raise _fail(name, "expected 'queue' or 'topic'" + (f", got {kind!r}" if kind else ""))
    return kind


def _principal(tokens: _Tokens, i: int, name: str) -> tuple[str | None, str]:
    word = _need(tokens, i, name, "user=NAME or group=NAME")
    key, eq, value = word.partition("=")
    if eq:
        if key.lower() not in ("user", "group") or not value:
            raise _fail(name, f"expected user=NAME or group=NAME, got {word!r}")
        return key.lower(), value
    return None, word  # a bare name: the server tries group, then user


def _members(text: str, name: str) -> list[str]:
    members = [m for part in split_list(text) for m in part.split()]
    if not members:
        raise _fail(name, "missing member names")
    return members


def parse_command(text: str) -> Command:
    """Parse one admin command line; raises ``CommandSyntaxError``."""
    line = text.strip()
    tokens = _tokenize(line)
    if not tokens:
        raise CommandSyntaxError("empty command")
    verb = tokens.key(0)
    obj = tokens.key(1)
    try:
        return _parse(tokens, verb, obj, line)
    except CommandSyntaxError:
        raise
    except ValueError as exc:
        raise CommandSyntaxError(str(exc)) from None


def _parse(t: _Tokens, verb: str, obj: str, line: str) -> Command:  # noqa: C901
    if verb in ("quit", "exit", "help", "info", "shutdown", "commit") and len(t) == 1:
        name = {"quit": "exit", "info": "show server"}.get(verb, verb)
        return Command(name, {}, line)
    if verb == "disconnect" and len(t) == 1:
        return Command("disconnect", {}, line)
    if verb == "connect":
        words = [t.word(i) for i in range(1, len(t))]
        url = words.pop(0) if words and "://" in words[0] else None
        if len(words) > 2:
            raise _fail("connect", "expected an optional URL, then USER and PASSWORD")
        user = words[0] if words else None
        password = words[1] if len(words) > 1 else None
        return Command("connect", {"url": url, "user": user, "password": password}, line)
    if verb == "compare":
        words = [t.word(i) for i in range(1, len(t))]
        if not words or "://" not in words[0] or len(words) not in (1, 3):
            raise _fail("compare", "expected a server URL, then optionally USER and PASSWORD")
        return Command("compare", {"url": words[0], "user": words[1] if len(words) > 1
                                   else None, "password": words[2] if len(words) > 2
                                   else None}, line)
    if verb == "autocommit":
        return Command("autocommit", {"value": t.key(1)}, line)
    if verb == "show":
        if obj in _SHOW_SIMPLE:
            name = f"show {obj}"
            _no_more(t, 2, name)
            return Command(name, {}, line)
        if obj in _SHOW_ONE:
            name = f"show {obj}"
            value = _need(t, 2, name, f"{obj} name")
            _no_more(t, 3, name)
            return Command(name, {"name": value}, line)
        if obj in _SHOW_PATTERN:
            name = f"show {obj}"
            pattern = t.word(2) if len(t) > 2 else None
            return Command(name, {"pattern": pattern}, line)
        if obj in ("connections", "consumers"):
            name = f"show {obj}"
            return Command(name, {"filters": _filters(t, 2, name)}, line)
        if obj == "stat":
            if len(t) == 2:
                return Command("show stat", {}, line)
            kind = _kind(t, 2, "show stat")
            value = _need(t, 3, "show stat", f"{kind} name")
            _no_more(t, 4, "show stat")
            return Command("show stat", {"kind": kind, "name": value}, line)
        raise CommandSyntaxError(f"unknown command 'show {obj}'; type 'help' for the list")
    if verb == "set" and obj == "server":
        params: list[tuple[str, str | None]] = []
        for i in range(2, len(t)):
            word = t.word(i)
            key, eq, value = word.partition("=")
            if not key:
                raise _fail("set server", f"expected PARAM=VALUE, got {word!r}")
            if not eq and key.lower() != "password":
                raise _fail("set server", f"expected PARAM=VALUE, got {word!r}")
            params.append((key.lower(), value if eq else None))  # None: prompt for it
        if not params:
            raise _fail("set server", "missing PARAM=VALUE")
        return Command("set server", {"params": params}, line)
    if verb == "set" and obj == "password":
        user = _need(t, 2, "set password", "user name")
        password = t.word(3) if len(t) > 3 else None
        _no_more(t, 4, "set password")
        return Command("set password", {"name": user, "password": password}, line)
    if verb in ("create", "delete") and obj in ("user", "group", "queue", "topic"):
        name = f"{verb} {obj}"
        value = _need(t, 2, name, f"{obj} name")
        args: dict[str, Any] = {"name": value}
        if verb == "delete":
            _no_more(t, 3, name)
        elif obj in ("queue", "topic"):
            args["props"] = t.rest(3)
        else:
            args["description"] = ""
            if obj == "user":
                args["password"] = None
            for i in range(3, len(t)):
                word = t.word(i)
                if obj == "user" and word.lower().startswith("password="):
                    args["password"] = word.partition("=")[2]
                elif i == 3:
                    args["description"] = word
                else:
                    raise _fail(name, f"unexpected {word!r}")
        return Command(name, args, line)
    if verb == "delete" and obj == "durable":
        value = _need(t, 2, "delete durable", "durable name")
        client_id = t.word(3) if len(t) > 3 else None
        _no_more(t, 4, "delete durable")
        return Command("delete durable", {"name": value, "client_id": client_id}, line)
    if verb == "delete" and obj == "connection":
        value = _need(t, 2, "delete connection", "connection id")
        _no_more(t, 3, "delete connection")
        if not value.isdigit():
            raise _fail("delete connection", f"expected a connection id number, got {value!r}")
        return Command("delete connection", {"id": int(value)}, line)
    if verb in ("add", "remove") and obj == "member":
        name = f"{verb} member"
        group = _need(t, 2, name, "group name")
        return Command(name, {"group": group, "members": _members(t.rest(3), name)}, line)
    if verb in ("addprop", "setprop", "removeprop"):
        kind = _kind(t, 1, verb)
        value = _need(t, 2, verb, f"{kind} name")
        props = t.rest(3)
        if not props and verb != "setprop":
            raise _fail(verb, "missing properties")
        return Command(verb, {"kind": kind, "name": value, "props": props}, line)
    if verb == "purge":
        if obj == "all":
            what = t.key(2)
            if what not in ("queues", "topics"):
                raise _fail("purge all", "expected 'queues' or 'topics'")
            pattern = t.word(3) if len(t) > 3 else None
            return Command("purge all", {"kind": what[:-1], "pattern": pattern}, line)
        if obj == "durable":
            value = _need(t, 2, "purge durable", "durable name")
            return Command("purge durable", {"name": value}, line)
        name = f"purge {obj}"
        if name not in USAGE:
            raise CommandSyntaxError(f"unknown command 'purge {obj}'; usage: purge queue|topic "
                                     "NAME, purge all queues|topics, purge durable NAME")
        value = _need(t, 2, name, f"{obj} name")
        _no_more(t, 3, name)
        return Command(name, {"name": value}, line)
    if verb in ("grant", "revoke"):
        return _parse_grant(t, verb, obj, line)
    if verb == "showacl":
        if obj == "admin":
            _no_more(t, 2, "showacl")
            return Command("showacl", {"kind": "admin"}, line)
        if obj not in ("queue", "topic", "user", "group"):
            raise _fail("showacl", "expected queue, topic, admin, user or group")
        value = _need(t, 2, "showacl", f"{obj} name")
        return Command("showacl", {"kind": obj, "name": value}, line)
    raise CommandSyntaxError(f"unknown command {line!r}; type 'help' for the list")


def _parse_grant(t: _Tokens, verb: str, obj: str, line: str) -> Command:
    if obj == "admin":
        kind, dest, i = "admin", "", 2
    else:
        kind = _kind(t, 1, verb)
        dest = _need(t, 2, verb, f"{kind} name")
        i = 3
    if verb == "revoke" and kind != "admin" and i < len(t) and t.word(i) == "*":
        return Command("revoke", {"kind": kind, "dest": dest, "principal_kind": None,
                                  "principal": "*", "perms": []}, line)
    principal_kind, principal = _principal(t, i, verb)
    perms_text = t.rest(i + 1)
    if not perms_text:
        raise _fail(verb, "missing permissions")
    perms = [p for part in split_list(perms_text) for p in part.split()]
    return Command(verb, {"kind": kind, "dest": dest, "principal_kind": principal_kind,
                          "principal": principal, "perms": perms}, line)


def _filters(t: _Tokens, start: int, name: str) -> dict[str, str]:
    filters: dict[str, str] = {}
    for i in range(start, len(t)):
        key, eq, value = t.word(i).partition("=")
        if eq:
            filters[key.lower()] = value
        else:
            filters[key.lower()] = ""  # flags such as 'full', 'counts': accepted, ignored
    return filters


def help_text() -> str:
    return "\n".join(["Commands:"] + [f"  {usage}" for usage in USAGE.values()])
