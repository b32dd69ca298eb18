"""``users.conf``, ``groups.conf`` and ``acl.conf`` (EMS.md 4.1-4.3): parse, format, edit.

Parsing keeps file and line for every entry so errors name them. The ``edit_*``
functions change a ``ConfigText`` in place (comments and order survive) and the
caller saves it with ``ConfigText.save``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from emsfast.config.names import validate_destination_name
from emsfast.config.syntax import Line, config_error, read_lines, split_list, unquote
from emsfast.config.writeback import ConfigText, is_meaningful
from emsfast.errors import InvalidError

AclKind = Literal["queue", "topic", "admin"]
PrincipalKind = Literal["user", "group"]

MAX_NAME_LENGTH = 255
MAX_PASSWORD_LENGTH = 4096
ADMIN_USER = "admin"
ADMIN_GROUP = "$admin"
ALL_GROUP = "all"

QUEUE_PERMS = frozenset({"send", "receive", "browse"})
TOPIC_PERMS = frozenset({"publish", "subscribe", "durable", "use_durable"})
DEST_ADMIN_PERMS = frozenset({"view", "create", "delete", "modify", "purge"})
GLOBAL_ADMIN_PERMS = frozenset(
    """all view-all change-acl change-admin-acl change-bridge change-connection
    create-destination modify-destination delete-destination change-durable change-factory
    change-group change-message change-route change-server change-user purge-destination
    purge-durable shutdown view-acl view-admin-acl view-bridge view-connection
    view-destination view-durable view-factory view-group view-message view-route
    view-server view-user""".split()
)
PERMS_BY_KIND: dict[str, frozenset[str]] = {
    "queue": QUEUE_PERMS | DEST_ADMIN_PERMS | {"all"},
    "topic": TOPIC_PERMS | DEST_ADMIN_PERMS | {"all"},
    "admin": GLOBAL_ADMIN_PERMS,
}


@dataclass(slots=True)
class User:
    name: str
    password: str = ""  # "" = none; "$..." = hashed or mangled; else plain text
    description: str = ""
    where: str = ""


@dataclass(slots=True)
class Group:
    name: str
    description: str = ""
    members: list[str] = field(default_factory=list)
    where: str = ""


@dataclass(frozen=True, slots=True)
class AclEntry:
    kind: AclKind
    dest: str  # "" for ADMIN entries
    principal_kind: PrincipalKind
    principal: str
    perms: tuple[str, ...]
    where: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.kind, self.dest, self.principal_kind, self.principal)


def check_name(name: str, what: str) -> str:
    """Validate a user or group name (EMS: at most 255 characters, no ':')."""
    if not name:
        raise InvalidError(f"{what} name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidError(f"{what} name is longer than {MAX_NAME_LENGTH} characters")
    if ":" in name or any(ch.isspace() for ch in name) or '"' in name:
        raise InvalidError(f"{what} name {name!r} may not contain ':', quotes or spaces")
    return name


def check_perms(kind: str, perms: list[str]) -> tuple[str, ...]:
    """Lower-case, validate and de-duplicate ``perms`` for an entry of ``kind``."""
    allowed = PERMS_BY_KIND[kind]
    out: list[str] = []
    for perm in perms:
        p = perm.strip().lower()
        if p not in allowed:
            raise InvalidError(
                f"unknown {kind} permission {perm!r}; expected some of {', '.join(sorted(allowed))}"
            )
        if p not in out:
            out.append(p)
    if not out:
        raise InvalidError("no permissions given")
    return tuple(out)


def _missing(path: str, required: bool, what: str, warnings: list[str]) -> bool:
    if os.path.exists(path):
        return False
    if required:
        raise config_error(path, None, None, "file not found")
    warnings.append(f"{path}: file not found; no {what} configured")
    return True


def _wrap(line: Line, exc: Exception) -> Exception:
    return config_error(line.path, line.number, None, str(exc))


# -- users.conf -------------------------------------------------------------------


def parse_user(line: Line) -> User:
    name, _, rest = line.text.partition(":")
    password, _, desc = rest.partition(":")
    try:
        check_name(name.strip(), "user")
        description = unquote(desc.strip())
    except (InvalidError, ValueError) as exc:
        raise _wrap(line, exc) from None
    if len(password) > MAX_PASSWORD_LENGTH:
        raise config_error(line.path, line.number, None,
                           f"password longer than {MAX_PASSWORD_LENGTH} characters")
    return User(name.strip(), password.strip(), description, f"{line.path}:{line.number}")


def load_users(path: str, required: bool, warnings: list[str]) -> dict[str, User]:
    users: dict[str, User] = {}
    if _missing(path, required, "users", warnings):
        return users
    for line in read_lines(path):
        user = parse_user(line)
        if user.name in users:
            warnings.append(f"{user.where}: user {user.name!r} defined twice; the first wins")
            continue
        users[user.name] = user
    return users


def format_user(user: User) -> str:
    return f'{user.name}:{user.password}:"{user.description}"'


def _user_lines(text: ConfigText, name: str) -> list[int]:
    return text.find(lambda raw: raw.partition(":")[0].strip() == name)


def edit_set_user(text: ConfigText, user: User) -> None:
    found = _user_lines(text, user.name)
    if found:
        text.lines[found[0]] = format_user(user)
    else:
        text.lines.append(format_user(user))


def edit_delete_user(text: ConfigText, name: str) -> None:
    for i in reversed(_user_lines(text, name)):
        del text.lines[i]


# -- groups.conf ------------------------------------------------------------------


def _parse_group_header(line: Line) -> Group:
    name, _, desc = line.text.partition(":")
    try:
        check_name(name.strip(), "group")
        description = unquote(desc.strip())
    except (InvalidError, ValueError) as exc:
        raise _wrap(line, exc) from None
    return Group(name.strip(), description, [], f"{line.path}:{line.number}")


def load_groups(path: str, required: bool, warnings: list[str]) -> dict[str, Group]:
    groups: dict[str, Group] = {}
    if _missing(path, required, "groups", warnings):
        return groups
    current: Group | None = None
    for line in read_lines(path):
        if line.raw[:1].isspace():
            if current is None:
                raise config_error(line.path, line.number, None,
                                   f"member {line.text!r} before any group line")
            try:
                member = check_name(line.text, "member")
            except InvalidError as exc:
                raise _wrap(line, exc) from None
            if member not in current.members:
                current.members.append(member)
            continue
        group = _parse_group_header(line)
        if group.name in groups:
            raise config_error(line.path, line.number, None,
                               f"group {group.name!r} already defined at {groups[group.name].where}")
        groups[group.name] = group
        current = group
    return groups


def format_group_header(group: Group) -> str:
    return f'{group.name}:"{group.description}"'


def _group_span(text: ConfigText, name: str) -> tuple[int, int] | None:
    """(header index, index after its last member line) of group ``name``."""
    start = None
    for i, raw in enumerate(text.lines):
        if not is_meaningful(raw):
            continue
        if raw[:1].isspace():
            continue
        if start is not None:
            return start, _last_member(text, start) + 1
        if raw.partition(":")[0].strip() == name:
            start = i
    if start is None:
        return None
    return start, _last_member(text, start) + 1


def _last_member(text: ConfigText, header: int) -> int:
    last = header
    for i in range(header + 1, len(text.lines)):
        raw = text.lines[i]
        if not is_meaningful(raw):
            continue
        if not raw[:1].isspace():
            break
        last = i
    return last


def edit_set_group(text: ConfigText, group: Group) -> None:
    """Write the header of ``group`` and make its member lines equal ``group.members``."""
    span = _group_span(text, group.name)
    if span is None:
        if text.lines and text.lines[-1].strip():
            text.lines.append("")
        text.lines.append(format_group_header(group))
        text.lines.extend(f"   {m}" for m in group.members)
        return
    start, end = span
    text.lines[start] = format_group_header(group)
    present: list[str] = []
    for i in reversed(range(start + 1, end)):
        raw = text.lines[i]
        if is_meaningful(raw):
            if raw.strip() in group.members:
                present.append(raw.strip())
            else:
                del text.lines[i]
                end -= 1
    added = [f"   {m}" for m in group.members if m not in present]
    text.lines[end:end] = added


def edit_delete_group(text: ConfigText, name: str) -> None:
    span = _group_span(text, name)
    if span is not None:
        del text.lines[span[0] : span[1]]


# -- acl.conf ---------------------------------------------------------------------


def parse_acl(line: Line) -> AclEntry:
    kind: str | None = None
    dest = ""
    principal_kind: str | None = None
    principal = ""
    perms: list[str] | None = None

    def fail(problem: str) -> Exception:
        return config_error(line.path, line.number, None, problem)

    for token in line.text.split():
        key, eq, value = token.partition("=")
        key = key.upper()
        if key == "ADMIN" and not eq:
            kind = "admin"
        elif key in ("QUEUE", "TOPIC") and eq:
            kind, dest = key.lower(), value
        elif key in ("USER", "GROUP") and eq:
            if principal_kind is not None:
                raise fail("more than one USER= or GROUP=")
            principal_kind, principal = key.lower(), value
        elif key == "PERM" and eq:
            try:
                perms = split_list(value)
            except ValueError as exc:
                raise fail(str(exc)) from None
        else:
            raise fail(f"unexpected {token!r}; expected QUEUE=, TOPIC=, ADMIN, USER=, "
                       "GROUP= or PERM=")
    if kind is None:
        raise fail("missing QUEUE=, TOPIC= or ADMIN")
    if principal_kind is None or not principal:
        raise fail("missing USER= or GROUP=")
    if perms is None:
        raise fail("missing PERM=")
    try:
        if kind != "admin":
            validate_destination_name(dest, wildcards=True)
        checked = check_perms(kind, perms)
    except InvalidError as exc:
        raise fail(str(exc)) from None
    return AclEntry(kind, dest, principal_kind, principal, checked,  # type: ignore[arg-type]
                    f"{line.path}:{line.number}")


def load_acl(path: str, required: bool, warnings: list[str]) -> list[AclEntry]:
    entries: dict[tuple[str, str, str, str], AclEntry] = {}
    if _missing(path, required, "ACL entries", warnings):
        return []
    for line in read_lines(path):
        entry = parse_acl(line)
        old = entries.get(entry.key)
        if old is not None:  # two lines for one principal and destination: rights add up
            merged = old.perms + tuple(p for p in entry.perms if p not in old.perms)
            entry = AclEntry(old.kind, old.dest, old.principal_kind, old.principal, merged,
                             old.where)
        entries[entry.key] = entry
    return list(entries.values())


def format_acl(entry: AclEntry) -> str:
    target = "ADMIN" if entry.kind == "admin" else f"{entry.kind.upper()}={entry.dest}"
    who = f"{entry.principal_kind.upper()}={entry.principal}"
    return f"{target:<16} {who:<16} PERM={','.join(entry.perms)}"


def _acl_key(raw: str) -> tuple[str, str, str, str] | None:
    try:
        entry = parse_acl(Line("", 0, raw))
    except ValueError:
        return None
    return entry.key


def edit_set_acl(text: ConfigText, entry: AclEntry) -> None:
    """Make the file's rights for ``entry.key`` equal ``entry.perms`` (none = remove)."""
    found = text.find(lambda raw: _acl_key(raw) == entry.key)
    if entry.perms:
        if found:
            text.lines[found[0]] = format_acl(entry)
        else:
            text.lines.append(format_acl(entry))
        found = found[1:]
    for i in reversed(found):
        del text.lines[i]
