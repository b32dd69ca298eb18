"""Users, groups and ACL entries of a running server, changed by admin commands.

Each change edits the live tables, rebuilds the ``Acl`` snapshot (so it applies
at once) and writes the affected file back with comments and order kept. Any
plain-text password read from a hand-written users.conf is hashed at that write.
"""

from __future__ import annotations

from emsfast.auth.acl import Acl
from emsfast.auth.passwords import hash_password_async, needs_hashing
from emsfast.config.security import (
    ADMIN_GROUP,
    ADMIN_USER,
    AclEntry,
    Group,
    User,
    edit_delete_group,
    edit_delete_user,
    edit_set_acl,
    edit_set_group,
    edit_set_user,
    load_acl,
    load_groups,
    load_users,
)
from emsfast.config.tibemsd import TibemsdConfig
from emsfast.config.writeback import ConfigText
from emsfast.errors import InUseError, InvalidError, NotAllowedError, NotFoundError


class SecurityState:
    def __init__(self, config: TibemsdConfig) -> None:
        self.warnings: list[str] = []
        self.users_path = config.users
        self.groups_path = config.groups
        self.acl_path = config.acl_list
        self.users = load_users(config.users, config.is_set("users"), self.warnings)
        self.groups = load_groups(config.groups, config.is_set("groups"), self.warnings)
        self.entries = load_acl(config.acl_list, config.is_set("acl_list"), self.warnings)
        # Predefined (EMS.md 4.1, 4.2): they exist even when the files omit them.
        self.users.setdefault(ADMIN_USER, User(ADMIN_USER, "", "Administrator", "<built-in>"))
        self.groups.setdefault(ADMIN_GROUP, Group(ADMIN_GROUP, "Administrators", [],
                                                  "<built-in>"))
        self.acl = Acl(self.groups, self.entries)

    def rebuild(self) -> None:
        self.acl = Acl(self.groups, self.entries)

    # -- users -------------------------------------------------------------------

    def stored_password(self, name: str) -> str | None:
        user = self.users.get(name)
        return None if user is None else user.password

    async def _save_users(self, changed: list[User]) -> None:
        text = ConfigText.load(self.users_path)
        for user in self.users.values():
            if needs_hashing(user.password):
                user.password = await hash_password_async(user.password)
                if user not in changed:
                    changed.append(user)
        for user in changed:
            edit_set_user(text, user)
        text.save()

    async def create_user(self, name: str, description: str, password: str | None) -> None:
        if name in self.users:
            raise InUseError(f"user '{name}' already exists")
        user = User(name, await hash_password_async(password) if password else "", description)
        self.users[name] = user
        await self._save_users([user])

    async def set_password(self, name: str, password: str) -> None:
        user = self._user(name)
        user.password = await hash_password_async(password) if password else ""
        await self._save_users([user])

    async def delete_user(self, name: str) -> None:
        if name == ADMIN_USER:
            raise NotAllowedError("the admin user cannot be deleted")
        self._user(name)
        del self.users[name]
        text = ConfigText.load(self.users_path)
        edit_delete_user(text, name)
        text.save()
        touched = [g for g in self.groups.values() if name in g.members]
        for group in touched:
            group.members.remove(name)
        if touched:
            self._save_groups(touched)
        self.rebuild()

    def _user(self, name: str) -> User:
        user = self.users.get(name)
        if user is None:
            raise NotFoundError(f"user '{name}' does not exist")
        return user

    # -- groups ------------------------------------------------------------------

    def _save_groups(self, changed: list[Group], deleted: str | None = None) -> None:
        text = ConfigText.load(self.groups_path)
        if deleted is not None:
            edit_delete_group(text, deleted)
        for group in changed:
            edit_set_group(text, group)
        text.save()

    def group(self, name: str) -> Group:
        group = self.groups.get(name)
        if group is None:
            raise NotFoundError(f"group '{name}' does not exist")
        return group

    def create_group(self, name: str, description: str) -> None:
        if name in self.groups:
            raise InUseError(f"group '{name}' already exists")
        if name == "all":
            raise InvalidError("'all' is the built-in group of every user")
        group = Group(name, description)
        self.groups[name] = group
        self._save_groups([group])

    def delete_group(self, name: str) -> None:
        if name == ADMIN_GROUP:
            raise NotAllowedError("the $admin group cannot be deleted")
        self.group(name)
        del self.groups[name]
        self._save_groups([], deleted=name)
        self.rebuild()

    def add_members(self, name: str, members: list[str]) -> None:
        group = self.group(name)
        for member in members:
            if member not in group.members:
                group.members.append(member)  # unknown names become external members
        self._save_groups([group])
        self.rebuild()

    def remove_members(self, name: str, members: list[str]) -> None:
        group = self.group(name)
        missing = [m for m in members if m not in group.members]
        if missing:
            raise NotFoundError(f"'{missing[0]}' is not a member of group '{name}'")
        group.members = [m for m in group.members if m not in members]
        self._save_groups([group])
        self.rebuild()

    # -- ACL ---------------------------------------------------------------------

    def principal_kind(self, name: str) -> str:
        """A bare name in grant/revoke: tried as a group first, then as a user."""
        if name in self.groups or name == "all":
            return "group"
        if name in self.users:
            return "user"
        raise NotFoundError(f"no user or group named '{name}'")

    def find(self, key: tuple[str, str, str, str]) -> AclEntry | None:
        return next((e for e in self.entries if e.key == key), None)

    def set_entry(self, new: AclEntry) -> None:
        """Replace the rights of ``new.key`` (no perms = remove the entry) and save."""
        keys = [e.key for e in self.entries]
        if new.key in keys:  # keep the file's order in memory too
            i = keys.index(new.key)
            self.entries[i:i + 1] = [new] if new.perms else []
        elif new.perms:
            self.entries.append(new)
        text = ConfigText.load(self.acl_path)
        edit_set_acl(text, new)
        text.save()
        self.rebuild()
