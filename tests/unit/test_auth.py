"""Password hashing, mangling and ACL permission checks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from emsfast.auth.acl import Acl
from emsfast.auth.passwords import (
    hash_password,
    hash_password_async,
    is_hashed,
    mangle,
    needs_hashing,
    unmangle,
    verify_password,
    verify_password_async,
)
from emsfast.auth.state import SecurityState
from emsfast.config.security import AclEntry, Group, load_users
from emsfast.config.tibemsd import load_tibemsd
from emsfast.errors import InUseError, NotAllowedError, NotFoundError


def test_hash_is_salted_and_verifies() -> None:
    a, b = hash_password("mySecret"), hash_password("mySecret")
    assert a != b and is_hashed(a) and a.startswith("$scrypt$")
    assert ":" not in a and "mySecret" not in a
    assert verify_password(a, "mySecret")
    assert not verify_password(a, "mysecret")
    assert not verify_password(a, None)
    assert hash_password("") == ""


def test_verify_plain_empty_unknown_and_bad_scheme() -> None:
    assert verify_password("plain", "plain") and not verify_password("plain", "other")
    assert needs_hashing("plain") and not needs_hashing("") and not needs_hashing("$scrypt$a$b")
    assert verify_password("", None) and verify_password("", "")
    assert not verify_password("", "x")
    assert not verify_password(None, "anything")
    assert not verify_password("$md5$abc$def", "x")
    assert not verify_password("$scrypt$!!$??", "x")


def test_async_forms_run_off_the_loop() -> None:
    async def main() -> None:
        stored = await hash_password_async("pw")
        assert await verify_password_async(stored, "pw")
        assert not await verify_password_async(stored, "no")

    asyncio.run(main())


def test_mangle_roundtrip() -> None:
    m = mangle("mySecret")
    assert m.startswith("$man$") and "mySecret" not in m
    assert unmangle(m) == "mySecret"
    assert mangle(m) == m and unmangle("clear") == "clear" and mangle("") == ""


GROUPS = {
    "operators": Group("operators", "", ["alice", "bob"]),
    "$admin": Group("$admin", "", ["carol"]),
}
ENTRIES = [
    AclEntry("queue", "orders.>", "group", "operators", ("send", "receive")),
    AclEntry("queue", "orders.special", "user", "bob", ("browse",)),
    AclEntry("topic", "prices.*", "user", "alice", ("subscribe", "durable")),
    AclEntry("topic", "news", "group", "all", ("subscribe",)),
    AclEntry("queue", "admin.q", "user", "dave", ("purge",)),
    AclEntry("admin", "", "user", "erin", ("view-all",)),
    AclEntry("admin", "", "user", "frank", ("change-user",)),
    AclEntry("topic", "full.>", "user", "gina", ("all",)),
]


@pytest.fixture
def acl() -> Acl:
    return Acl(GROUPS, ENTRIES)


def test_rights_are_user_union_groups_with_wildcards(acl: Acl) -> None:
    assert acl.allowed("alice", "queue", "orders.new", "send")
    assert not acl.allowed("alice", "queue", "orders.new", "browse")
    assert acl.allowed("bob", "queue", "orders.special", "browse")
    assert acl.allowed("bob", "queue", "orders.special", "receive")
    assert not acl.allowed("bob", "queue", "other", "send")
    assert acl.allowed("alice", "topic", "prices.eu", "durable")
    assert not acl.allowed("alice", "topic", "prices.eu.x", "subscribe")
    assert not acl.allowed("alice", "topic", "prices.eu", "publish")
    assert acl.allowed("zed", "topic", "news", "subscribe")  # group all
    assert not acl.allowed("zed", "topic", "news", "publish")
    assert acl.allowed("gina", "topic", "full.a.b", "use_durable")
    assert acl.allowed("gina", "topic", "full.a", "purge")


def test_admin_and_admin_group_have_every_right(acl: Acl) -> None:
    for user in ("admin", "carol"):
        assert acl.allowed(user, "queue", "anything", "send")
        assert acl.may_admin(user, "shutdown")
        assert acl.is_administrator(user)


def test_admin_permissions(acl: Acl) -> None:
    assert acl.may_admin("erin", "view-server") and acl.may_admin("erin", "view-user")
    assert not acl.may_admin("erin", "change-user")
    assert acl.may_admin("frank", "change-user") and acl.may_admin("frank", "view-user")
    assert not acl.may_admin("frank", "shutdown")
    # A destination-level right stands in for the global one on that destination only.
    assert acl.may_admin("dave", "purge-destination", "queue", "admin.q")
    assert acl.may_admin("dave", "view-destination", "queue", "admin.q")
    assert not acl.may_admin("dave", "purge-destination", "queue", "other")
    assert acl.is_administrator("dave") and acl.is_administrator("erin")
    assert not acl.is_administrator("alice")


def test_security_state_changes_are_written_back(tmp_path: Path) -> None:
    (tmp_path / "users.conf").write_text('# users\nadmin::"Administrator"\nhand:plain:"x"\n')
    (tmp_path / "tibemsd.conf").write_text("server = S\n")
    config = load_tibemsd(tmp_path / "tibemsd.conf")
    state = SecurityState(config)

    async def main() -> None:
        await state.create_user("EMS-SERVER", "peer", "mySecret")
        with pytest.raises(InUseError):
            await state.create_user("EMS-SERVER", "", None)
        await state.set_password("admin", "adm")
        state.create_group("ops", "night")
        state.add_members("ops", ["EMS-SERVER", "ext"])
        state.remove_members("ops", ["ext"])
        with pytest.raises(NotFoundError):
            state.remove_members("ops", ["nobody"])
        with pytest.raises(NotAllowedError):
            await state.delete_user("admin")
        state.set_entry(AclEntry("queue", "q.>", "group", "ops", ("send",)))

    asyncio.run(main())
    text = (tmp_path / "users.conf").read_text()
    assert text.startswith("# users\n") and "plain" not in text and "mySecret" not in text
    users = load_users(str(tmp_path / "users.conf"), True, [])
    assert verify_password(users["hand"].password, "plain")
    assert verify_password(users["EMS-SERVER"].password, "mySecret")
    assert verify_password(users["admin"].password, "adm")
    again = SecurityState(config)
    assert again.groups["ops"].members == ["EMS-SERVER"]
    assert again.acl.allowed("EMS-SERVER", "queue", "q.1", "send")


def test_authz_hooks_without_a_server(tmp_path: Path) -> None:
    """check_browser/check_producer/check_consumer on a stand-in connection."""
    from types import SimpleNamespace

    from emsfast.config.destinations import load_destinations
    from emsfast.log import Tracer
    from emsfast.server.authz import Authz

    (tmp_path / "tibemsd.conf").write_text("authorization = enabled\n")
    (tmp_path / "acl.conf").write_text("QUEUE=s.> USER=u PERM=browse\n")
    (tmp_path / "q.conf").write_text(">\ns.> secure\n")
    authz = Authz(load_tibemsd(tmp_path / "tibemsd.conf"))
    table = load_destinations(tmp_path / "q.conf", "queue", required=True)
    broker = SimpleNamespace(queue_table=table, topic_table=table, durables={})
    conn: Any = SimpleNamespace(user="u", host="h", broker=broker,
                                server=SimpleNamespace(tracer=Tracer()),
                                durable_key=lambda name: name)
    authz.check_browser(conn, "s.q")
    authz.check_producer(conn, "queue", "open.q")  # not secure: no check
    with pytest.raises(NotAllowedError, match="needs the send permission"):
        authz.check_producer(conn, "queue", "s.q")
    conn.user = "other"
    with pytest.raises(NotAllowedError, match="not allowed to browse queue 's.q'"):
        authz.check_browser(conn, "s.q")
    authz.enabled = False
    authz.check_browser(conn, "s.q")


def test_tibemsd_passwords_are_unmangled_when_read(tmp_path: Path) -> None:
    (tmp_path / "tibemsd.conf").write_text(
        f"password = {mangle('mySecret')}\nssl_password = {mangle('k')}\nft_ssl_password = p\n")
    config = load_tibemsd(tmp_path / "tibemsd.conf")
    assert (config.password, config.ssl_password, config.ft_ssl_password) == ("mySecret", "k", "p")
