"""Permission checks over users, groups and acl.conf entries (EMS.md 4.3).

A user's rights are the union of their own entries and those of every group they
belong to, plus the group ``all``. An entry on a wildcard destination applies to
every name it matches. The ``admin`` user and members of ``$admin`` hold every
right and cannot lose them. Built once per change; checks are dict and list walks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from emsfast.config.names import wildcard_match
from emsfast.config.security import (
    ADMIN_GROUP,
    ADMIN_USER,
    ALL_GROUP,
    DEST_ADMIN_PERMS,
    GLOBAL_ADMIN_PERMS,
    QUEUE_PERMS,
    TOPIC_PERMS,
    AclEntry,
    Group,
)

_USER_PERMS = {"queue": QUEUE_PERMS, "topic": TOPIC_PERMS}
# Global rights that a destination-level right of the same family stands in for.
DEST_FOR_GLOBAL = {
    "view-destination": "view",
    "create-destination": "create",
    "delete-destination": "delete",
    "modify-destination": "modify",
    "purge-destination": "purge",
    "purge-durable": "purge",
}


def _expand_dest(kind: str, perms: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for perm in perms:
        if perm == "all":
            out |= _USER_PERMS[kind] | DEST_ADMIN_PERMS
        else:
            out.add(perm)
    if out & {"create", "delete", "modify", "purge"}:
        out.add("view")  # any modifying right implies view (EMS.md 4.3)
    return out


def _expand_global(perms: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for perm in perms:
        if perm == "all":
            out |= GLOBAL_ADMIN_PERMS
        elif perm == "view-all":
            out |= {p for p in GLOBAL_ADMIN_PERMS if p.startswith("view-")}
        else:
            out.add(perm)
    for perm in list(out):
        if perm.startswith(("change-", "create-", "modify-", "delete-", "purge-")):
            view = "view-" + perm.split("-", 1)[1]
            if view in GLOBAL_ADMIN_PERMS:
                out.add(view)  # a right to change something includes seeing it
    return out


class Acl:
    """Answers "may this user do that?" for one snapshot of users, groups and ACLs."""

    def __init__(self, groups: Mapping[str, Group], entries: Iterable[AclEntry]) -> None:
        self._member_of: dict[str, set[str]] = {}
        for group in groups.values():
            for member in group.members:
                self._member_of.setdefault(member, set()).add(group.name)
        self.entries = list(entries)
        self._dest: dict[str, list[AclEntry]] = {"queue": [], "topic": []}
        self._admin: list[AclEntry] = []
        for entry in self.entries:
            if entry.kind == "admin":
                self._admin.append(entry)
            else:
                self._dest[entry.kind].append(entry)

    def groups_of(self, user: str) -> set[str]:
        return self._member_of.get(user, set()) | {ALL_GROUP}

    def is_superuser(self, user: str) -> bool:
        return user == ADMIN_USER or ADMIN_GROUP in self._member_of.get(user, ())

    def _mine(self, user: str, entry: AclEntry, groups: set[str]) -> bool:
        if entry.principal_kind == "user":
            return entry.principal == user
        return entry.principal in groups

    def dest_perms(self, user: str, kind: str, name: str) -> set[str]:
        """Rights of ``user`` on queue/topic ``name`` (own ∪ groups', wildcards applied)."""
        groups = self.groups_of(user)
        out: set[str] = set()
        for entry in self._dest[kind]:
            if self._mine(user, entry, groups) and (
                    entry.dest == name or wildcard_match(entry.dest, name)):
                out |= _expand_dest(kind, entry.perms)
        return out

    def admin_perms(self, user: str) -> set[str]:
        groups = self.groups_of(user)
        out: set[str] = set()
        for entry in self._admin:
            if self._mine(user, entry, groups):
                out |= _expand_global(entry.perms)
        return out

    def allowed(self, user: str, kind: str, name: str, perm: str) -> bool:
        """May ``user`` use ``perm`` (send, receive, ...) on destination ``name``?"""
        return self.is_superuser(user) or perm in self.dest_perms(user, kind, name)

    def is_administrator(self, user: str) -> bool:
        """May log in with the admin tool: superuser, or any admin right at all."""
        if self.is_superuser(user) or self.admin_perms(user):
            return True
        groups = self.groups_of(user)
        return any(self._mine(user, e, groups) and _expand_dest(e.kind, e.perms) & DEST_ADMIN_PERMS
                   for entries in self._dest.values() for e in entries)

    def may_admin(self, user: str, perm: str, kind: str | None = None,
                  name: str | None = None) -> bool:
        """Global admin right ``perm``, or its destination-level form on ``name``."""
        if self.is_superuser(user) or perm in self.admin_perms(user):
            return True
        dest_perm = DEST_FOR_GLOBAL.get(perm)
        if dest_perm is None or kind is None or name is None:
            return False
        return dest_perm in self.dest_perms(user, kind, name)
