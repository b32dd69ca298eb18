"""users/groups/acl/factories/routes parsing and write-back: parse → edit → write → parse,
with comments and order kept, and the atomic rename."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emsfast.config.destinations import load_destinations
from emsfast.config.sections import load_factories, load_routes
from emsfast.config.security import (
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
from emsfast.config.tibemsd import load_tibemsd
from emsfast.config.writeback import (
    ConfigText,
    atomic_write,
    delete_destination,
    set_assignment,
    set_destination,
)
from emsfast.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def roundtrip(path: str) -> ConfigText:
    text = ConfigText.load(path)
    text.save()
    return ConfigText.load(path)


USERS = """\
# users: name:password:"description"
admin::"Administrator"

# the order desk
alice:secret:"Order entry: day shift"
bob::"Ops"
"""


def test_users_parse_and_roundtrip(tmp_path: Path) -> None:
    path = write(tmp_path, "users.conf", USERS)
    warnings: list[str] = []
    users = load_users(path, True, warnings)
    assert list(users) == ["admin", "alice", "bob"]
    assert users["alice"].password == "secret"
    assert users["alice"].description == "Order entry: day shift"
    assert users["alice"].where.endswith("users.conf:5")
    assert roundtrip(path).text() == USERS


def test_users_edit_keeps_comments(tmp_path: Path) -> None:
    path = write(tmp_path, "users.conf", USERS)
    text = ConfigText.load(path)
    edit_set_user(text, User("alice", "$scrypt$x$y", "Order entry"))
    edit_set_user(text, User("carol", "", "new"))
    edit_delete_user(text, "bob")
    text.save()
    content = Path(path).read_text()
    assert "# the order desk" in content and "# users:" in content
    users = load_users(path, True, [])
    assert list(users) == ["admin", "alice", "carol"]
    assert users["alice"].password == "$scrypt$x$y"


def test_users_errors_name_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "users.conf", 'ok::""\nbad name::""\n')
    with pytest.raises(ConfigError, match=r"users.conf:2: .*user name"):
        load_users(path, True, [])
    with pytest.raises(ConfigError, match="file not found"):
        load_users(str(tmp_path / "none.conf"), True, [])
    warnings: list[str] = []
    assert load_users(str(tmp_path / "none.conf"), False, warnings) == {}
    assert warnings


GROUPS = """\
# groups
operators:"Night shift"
   alice
   bob

# admins
$admin:"Full administrators"
   carol
"""


def test_groups_parse_edit_roundtrip(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.conf", GROUPS)
    groups = load_groups(path, True, [])
    assert groups["operators"].members == ["alice", "bob"]
    assert groups["$admin"].members == ["carol"]
    assert roundtrip(path).text() == GROUPS
    text = ConfigText.load(path)
    edit_set_group(text, Group("operators", "Night shift", ["bob", "dave"]))
    edit_set_group(text, Group("auditors", "read only", ["erin"]))
    text.save()
    groups = load_groups(path, True, [])
    assert groups["operators"].members == ["bob", "dave"]
    assert groups["$admin"].members == ["carol"]
    assert groups["auditors"].members == ["erin"]
    assert "# admins" in Path(path).read_text()
    text = ConfigText.load(path)
    edit_delete_group(text, "operators")
    text.save()
    assert list(load_groups(path, True, [])) == ["$admin", "auditors"]


def test_groups_member_before_group_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "groups.conf", "  alice\n")
    with pytest.raises(ConfigError, match="groups.conf:1"):
        load_groups(path, True, [])


ACL = """\
# acl
QUEUE=orders.>   GROUP=operators PERM=send,receive,browse
TOPIC=prices.*   USER=alice      PERM=subscribe,durable
TOPIC=prices.*   GROUP=all       PERM=subscribe
ADMIN            USER=carol      PERM=view-all,change-acl
"""


def test_acl_parse_edit_roundtrip(tmp_path: Path) -> None:
    path = write(tmp_path, "acl.conf", ACL)
    entries = load_acl(path, True, [])
    assert len(entries) == 4
    assert entries[0] == AclEntry("queue", "orders.>", "group", "operators",
                                  ("send", "receive", "browse"), entries[0].where)
    assert entries[3].kind == "admin" and entries[3].perms == ("view-all", "change-acl")
    assert roundtrip(path).text() == ACL
    text = ConfigText.load(path)
    edit_set_acl(text, AclEntry("topic", "prices.*", "user", "alice", ("subscribe",)))
    edit_set_acl(text, AclEntry("queue", "orders.>", "group", "operators", ()))
    edit_set_acl(text, AclEntry("queue", "q1", "user", "bob", ("send",)))
    text.save()
    keys = {(e.kind, e.dest, e.principal, e.perms) for e in load_acl(path, True, [])}
    assert keys == {("topic", "prices.*", "alice", ("subscribe",)),
                    ("topic", "prices.*", "all", ("subscribe",)),
                    ("admin", "", "carol", ("view-all", "change-acl")),
                    ("queue", "q1", "bob", ("send",))}
    assert Path(path).read_text().startswith("# acl\n")


@pytest.mark.parametrize("line, problem", [
    ("QUEUE=q USER=a PERM=publish", "unknown queue permission"),
    ("QUEUE=q PERM=send", "missing USER= or GROUP="),
    ("USER=a PERM=send", "missing QUEUE=, TOPIC= or ADMIN"),
    ("QUEUE=q USER=a", "missing PERM="),
    ("ADMIN USER=a PERM=fly", "unknown admin permission"),
    ("QUEUE=a..b USER=a PERM=send", "empty element"),
    ("FOO=1 USER=a PERM=send", "unexpected 'FOO=1'"),
])
def test_acl_errors(tmp_path: Path, line: str, problem: str) -> None:
    path = write(tmp_path, "acl.conf", "# c\n" + line + "\n")
    with pytest.raises(ConfigError, match=rf"acl.conf:2: .*{problem}"):
        load_acl(path, True, [])


TIBEMSD = """\
# main file
server                  = EMS-SERVER
password                =

# security
authorization           = disabled
listen                  = tcp://127.0.0.1:7222
"""


def test_tibemsd_set_assignment_roundtrip(tmp_path: Path) -> None:
    path = write(tmp_path, "tibemsd.conf", TIBEMSD)
    assert roundtrip(path).text() == TIBEMSD
    text = ConfigText.load(path)
    set_assignment(text, "authorization", "enabled")
    set_assignment(text, "password", "$man$abc")
    set_assignment(text, "log_trace", "DEFAULT,+CONNECT")
    text.save()
    content = Path(path).read_text()
    assert "authorization           = enabled\n" in content
    assert "# security\n" in content
    assert content.endswith("log_trace               = DEFAULT,+CONNECT\n")
    config = load_tibemsd(path)
    assert config.authorization is True
    assert config.log_trace == "DEFAULT,+CONNECT"


QUEUES = """\
# queues
>
orders.>        secure,maxbytes=10MB
# keep me
[jndi.name]orders.inbound  exclusive
"""


def test_destinations_edit_roundtrip(tmp_path: Path) -> None:
    path = write(tmp_path, "queues.conf", QUEUES)
    assert roundtrip(path).text() == QUEUES
    text = ConfigText.load(path)
    assert set_destination(text, "orders.inbound", "exclusive,maxRedelivery=5")
    assert not set_destination(text, "new.q", "secure")
    assert delete_destination(text, "orders.>")
    assert not delete_destination(text, "nope")
    text.save()
    table = load_destinations(path, "queue", required=True)
    entry = table.get("orders.inbound")
    assert entry is not None and entry.max_redelivery == 5
    assert table.get("new.q") is not None and table.get("orders.>") is None
    assert "# keep me" in Path(path).read_text()
    assert "[jndi.name]orders.inbound" in Path(path).read_text()


FACTORIES = """\
# factories
[FTConnectionFactory]
  type                    = generic
  url                     = tcp://hostA:7222,tcp://hostB:7222
  reconnect_attempt_count = 10
"""

ROUTES = """\
# routes
[EMS-PARIS]
  url=tcp://paris1:7222,tcp://paris2:7222
  zone_type=mhop
"""


def test_factories_and_routes_parse_and_roundtrip(tmp_path: Path) -> None:
    fpath = write(tmp_path, "factories.conf", FACTORIES)
    rpath = write(tmp_path, "routes.conf", ROUTES)
    factories = load_factories(fpath, True, [])
    assert factories[0].name == "FTConnectionFactory"
    assert factories[0].get("reconnect_attempt_count") == "10"
    assert load_routes(rpath, True, [])[0].get("zone_type") == "mhop"
    assert roundtrip(fpath).text() == FACTORIES
    assert roundtrip(rpath).text() == ROUTES
    assert load_factories(fpath, True, [])[0].get("type") == "generic"


@pytest.mark.parametrize("text, problem", [
    ("[F]\n  url = tcp://a:1\n", "has no type"),
    ("[F]\n  type = bogus\n  url = tcp://a:1\n", "expected one of"),
    ("[F]\n  type = generic\n", "has no url"),
    ("  type = generic\n", "before the first"),
])
def test_factories_errors(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, "factories.conf", text)
    with pytest.raises(ConfigError, match=problem):
        load_factories(path, True, [])


def test_samples_parse() -> None:
    sample = REPO / "conf" / "standalone"
    warnings: list[str] = []
    assert "admin" in load_users(str(sample / "users.conf"), True, warnings)
    assert "$admin" in load_groups(str(sample / "groups.conf"), True, warnings)
    load_acl(str(sample / "acl.conf"), True, warnings)
    load_factories(str(sample / "factories.conf"), True, warnings)
    load_routes(str(sample / "routes.conf"), True, warnings)


def test_atomic_write_leaves_no_temp_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "users.conf"
    path.write_text("old\n")
    os.chmod(path, 0o640)
    atomic_write(str(path), "new\n")
    assert path.read_text() == "new\n"
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["users.conf"]
