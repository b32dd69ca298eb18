"""The tibemsadmin grammar: what each command parses to, and clear errors for bad ones."""

from __future__ import annotations

import asyncio

import pytest

from emsfast.admin.commands import USAGE, CommandSyntaxError, help_text, parse_command
from emsfast.admin.executor import required_permission, table
from emsfast.server.authz import Authz


@pytest.mark.parametrize("text, name, args", [
    ("info", "show server", {}),
    ("SHOW SERVER", "show server", {}),
    ("show state", "show state", {}),
    ("set server password=mySecret", "set server", {"params": [("password", "mySecret")]}),
    ("set server authorization=enabled log_trace=DEFAULT,+CONNECT", "set server",
     {"params": [("authorization", "enabled"), ("log_trace", "DEFAULT,+CONNECT")]}),
    ("set server password", "set server", {"params": [("password", None)]}),
    ("set server password=", "set server", {"params": [("password", "")]}),
    ("create user EMS-SERVER password=mySecret", "create user",
     {"name": "EMS-SERVER", "description": "", "password": "mySecret"}),
    ('create user alice "Order entry" password=pw', "create user",
     {"name": "alice", "description": "Order entry", "password": "pw"}),
    ('create group ops "Night shift"', "create group",
     {"name": "ops", "description": "Night shift"}),
    ("set password bob", "set password", {"name": "bob", "password": None}),
    ("add member ops alice, bob,carol", "add member",
     {"group": "ops", "members": ["alice", "bob", "carol"]}),
    ("create queue orders.> secure, maxbytes=10MB", "create queue",
     {"name": "orders.>", "props": "secure, maxbytes=10MB"}),
    ("create topic t", "create topic", {"name": "t", "props": ""}),
    ("setprop topic t.x", "setprop", {"kind": "topic", "name": "t.x", "props": ""}),
    ("removeprop queue q maxmsgs", "removeprop", {"kind": "queue", "name": "q",
                                                  "props": "maxmsgs"}),
    ("show queues orders.>", "show queues", {"pattern": "orders.>"}),
    ("show topics", "show topics", {"pattern": None}),
    ("purge all queues", "purge all", {"kind": "queue", "pattern": None}),
    ("grant queue q user=alice send,receive", "grant",
     {"kind": "queue", "dest": "q", "principal_kind": "user", "principal": "alice",
      "perms": ["send", "receive"]}),
    ("grant admin ops view-all", "grant",
     {"kind": "admin", "dest": "", "principal_kind": None, "principal": "ops",
      "perms": ["view-all"]}),
    ("revoke topic t *", "revoke",
     {"kind": "topic", "dest": "t", "principal_kind": None, "principal": "*", "perms": []}),
    ("showacl user alice", "showacl", {"kind": "user", "name": "alice"}),
    ("delete durable d cid", "delete durable", {"name": "d", "client_id": "cid"}),
    ("delete connection 12", "delete connection", {"id": 12}),
    ("show connections user=bob full", "show connections",
     {"filters": {"user": "bob", "full": ""}}),
    ("show stat queue q", "show stat", {"kind": "queue", "name": "q"}),
    ("quit", "exit", {}),
    ("disconnect", "disconnect", {}),
    ("connect", "connect", {"url": None, "user": None, "password": None}),
    ("connect tcp://h:1 bob pw", "connect", {"url": "tcp://h:1", "user": "bob",
                                              "password": "pw"}),
    ("connect bob pw", "connect", {"url": None, "user": "bob", "password": "pw"}),
])
def test_parse(text: str, name: str, args: dict[str, object]) -> None:
    cmd = parse_command(text)
    assert cmd.name == name
    assert cmd.args == args


@pytest.mark.parametrize("text, problem", [
    ("", "empty command"),
    ("frobnicate", "unknown command 'frobnicate'"),
    ("show nothing", "unknown command 'show nothing'"),
    ("create queue", "missing queue name; usage: create queue NAME"),
    ("delete user a b", "unexpected 'b'"),
    ("set server", "missing PARAM=VALUE"),
    ("set server authorization", "expected PARAM=VALUE"),
    ("addprop queue q", "missing properties"),
    ("addprop bridge q x", "expected 'queue' or 'topic', got 'bridge'"),
    ("grant queue q user=alice", "missing permissions"),
    ("grant queue q owner=alice send", "expected user=NAME or group=NAME"),
    ("delete connection abc", "expected a connection id number"),
    ('create user "alice', "unterminated quote"),
    ("purge all durables", "expected 'queues' or 'topics'"),
    ("add member ops", "missing member names"),
    ("connect a b c", "expected an optional URL"),
])
def test_malformed(text: str, problem: str) -> None:
    with pytest.raises(CommandSyntaxError, match=problem):
        parse_command(text)


def test_help_lists_every_command() -> None:
    text = help_text()
    for usage in USAGE.values():
        assert usage in text


def test_permissions_per_command() -> None:
    assert required_permission(parse_command("info")) == (None, None, None)
    assert required_permission(parse_command("create user x"))[0] == "change-user"
    assert required_permission(parse_command("purge queue q")) == (
        "purge-destination", "queue", "q")
    assert required_permission(parse_command("addprop topic t secure")) == (
        "modify-destination", "topic", "t")
    assert required_permission(parse_command("grant admin u all"))[0] == "change-admin-acl"
    assert required_permission(parse_command("showacl queue q"))[0] == "view-acl"
    assert required_permission(parse_command("shutdown"))[0] == "shutdown"
    assert required_permission(parse_command("show stat queue q")) == ("view-destination", None, None)
    for text in ("show queue q", "show queues", "show durables", "delete connection 1",
                 "set server a=b", "remove member g u"):
        assert required_permission(parse_command(text))[0] is not None


def test_table_aligns_columns() -> None:
    assert table(["A", "Long"], [("xyz", 1)]) == ["A    Long", "xyz  1"]


def test_repeated_failures_are_slowed(tmp_path) -> None:
    from emsfast.config.tibemsd import load_tibemsd

    (tmp_path / "tibemsd.conf").write_text("authorization = enabled\n")
    authz = Authz(load_tibemsd(tmp_path / "tibemsd.conf"))
    assert [authz._delay(n) for n in range(1, 8)] == [0, 0, 0, 0.5, 1.0, 2.0, 2.0]

    async def main() -> None:
        await authz.login("admin", "", "10.0.0.1")
        for _ in range(3):
            with pytest.raises(Exception, match="invalid user name or password"):
                await authz.login("admin", "wrong", "10.0.0.1")
        assert authz._recent_failures("10.0.0.1") == 3
        assert authz._recent_failures("10.0.0.2") == 0

    asyncio.run(main())


def test_unwritable_file_is_a_clear_error(tmp_path) -> None:
    from types import SimpleNamespace

    from emsfast.admin.executor import execute
    from emsfast.config.tibemsd import load_tibemsd
    from emsfast.errors import ConfigError
    from emsfast.log import Tracer

    (tmp_path / "tibemsd.conf").write_text("server = S\n")
    (tmp_path / "blocker").write_text("a file, not a directory\n")
    authz = Authz(load_tibemsd(tmp_path / "tibemsd.conf"))
    authz.state.users_path = str(tmp_path / "blocker" / "users.conf")
    conn = SimpleNamespace(user="admin", host="h",
                           server=SimpleNamespace(authz=authz, tracer=Tracer()))
    with pytest.raises(ConfigError, match="blocker/users.conf: cannot read"):
        asyncio.run(execute(conn, "create user x"))  # type: ignore[arg-type]


def test_full_disk_is_a_clear_error(tmp_path, monkeypatch) -> None:
    from types import SimpleNamespace

    import emsfast.config.writeback as writeback
    from emsfast.admin.executor import execute
    from emsfast.config.tibemsd import load_tibemsd
    from emsfast.errors import ConfigError
    from emsfast.log import Tracer

    def full(path: str, text: str) -> None:
        raise OSError(28, "No space left on device", path)

    (tmp_path / "tibemsd.conf").write_text("server = S\n")
    authz = Authz(load_tibemsd(tmp_path / "tibemsd.conf"))
    conn = SimpleNamespace(user="admin", host="h",
                           server=SimpleNamespace(authz=authz, tracer=Tracer()))
    monkeypatch.setattr(writeback, "atomic_write", full)
    with pytest.raises(ConfigError, match="could not write .*groups.conf: No space left"):
        asyncio.run(execute(conn, "create group g"))  # type: ignore[arg-type]
    assert "g" not in authz.state.groups  # undone in memory too
