"""queues.conf / topics.conf: entry syntax, property checks, inheritance (EMS.md 4.4, 5.3, 5.4)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from emsfast.config.destinations import (
    DEFAULT_STORE,
    FAILSAFE_STORE,
    PREFETCH_NONE,
    DestinationProps,
    DestinationTable,
    Kind,
    OverflowPolicy,
    load_destinations,
)
from emsfast.errors import ConfigError


def table(tmp_path: Path, text: str, kind: Kind = "queue") -> DestinationTable:
    path = tmp_path / f"{kind}s.conf"
    path.write_text(text)
    return load_destinations(path, kind, required=True)


def get(t: DestinationTable, name: str) -> DestinationProps:
    resolved = t.resolve(name)
    assert resolved is not None, name
    return resolved


def props(tmp_path: Path, text: str, name: str, kind: Kind = "queue") -> DestinationProps:
    resolved = table(tmp_path, text, kind).resolve(name)
    assert resolved is not None
    return resolved


# ---- entries and properties --------------------------------------------------


def test_every_property_parses(tmp_path: Path) -> None:
    p = props(
        tmp_path,
        "q  secure, store=mystore,maxbytes=10MB,maxmsgs=1000,overflowPolicy=discardOld,"
        "exclusive,prefetch=10,maxRedelivery=5,expiration=10min,redeliveryDelay=30sec,"
        "flowControl=60MB,sender_name,sender_name_enforced,trace=body,global\n",
        "q",
    )
    assert p == DestinationProps(
        secure=True,
        store="mystore",
        maxbytes=10 * 1024**2,
        maxmsgs=1000,
        overflow_policy=OverflowPolicy.DISCARD_OLD,
        exclusive=True,
        prefetch=10,
        max_redelivery=5,
        expiration_ms=600_000,
        redelivery_delay_ms=30_000,
        flow_control=60 * 1024**2,
        sender_name=True,
        sender_name_enforced=True,
        trace="body",
        global_=True,
        static=True,
    )


def test_defaults_queue_and_topic(tmp_path: Path) -> None:
    q = props(tmp_path, "q\n", "q")
    assert q == DestinationProps(prefetch=5, static=True)
    assert q.store == DEFAULT_STORE and q.overflow_policy == "default" and q.trace is None
    t = props(tmp_path, "t\n", "t", "topic")
    assert t.prefetch == 64 and t.static


def test_value_spellings(tmp_path: Path) -> None:
    text = (
        "a failsafe\n"
        "b prefetch=none,trace\n"
        "c OVERFLOWPOLICY=REJECTINCOMING,expiration=45,maxRedelivery=0\n"
        'd store="$sys.failsafe",failsafe\n'
        "[jndi.a, jndi.b] e secure\n"
    )
    t = table(tmp_path, text)
    assert t.warnings == []
    assert get(t, "a").store == FAILSAFE_STORE
    b = t.resolve("b")
    assert b is not None and b.prefetch == PREFETCH_NONE and b.trace == "default"
    c = t.resolve("c")
    assert c is not None and c.overflow_policy is OverflowPolicy.REJECT_INCOMING
    assert c.expiration_ms == 45_000 and c.max_redelivery == 0
    assert get(t, "d").store == FAILSAFE_STORE
    assert get(t, "e").secure


def test_entries_keep_location(tmp_path: Path) -> None:
    t = table(tmp_path, "# c\n\nfoo.>   secure\n")
    entry = t.get("foo.>")
    assert entry is not None and entry.line == 3 and entry.raw == "foo.>   secure"
    assert entry.where == f"{t.path}:3" and entry.secure
    assert t.get("nothing") is None


@pytest.mark.parametrize(
    ("line", "kind", "message"),
    [
        ("q maxbytes=lots", "queue", "maxbytes: expected a size such as 10MB, got 'lots'"),
        ("q maxmsgs=x", "queue", "maxmsgs: expected a whole number, got 'x'"),
        ("q maxmsgs=-1", "queue", "maxmsgs: expected a number >= 0"),
        ("q overflowPolicy=drop", "queue", "overflowPolicy: expected default, discardOld or"),
        ("q prefetch=many", "queue", "prefetch: expected a number or none, got 'many'"),
        ("q maxRedelivery=1", "queue", "maxRedelivery: expected 0 or 2..255, got '1'"),
        ("q maxRedelivery=256", "queue", "maxRedelivery: expected 0 or 2..255, got '256'"),
        ("q expiration=soon", "queue", "expiration: expected a time such as 30sec"),
        ("q redeliveryDelay=5sec", "queue", "redeliveryDelay: expected 0 or 15sec..8hour"),
        ("q redeliveryDelay=9hour", "queue", "redeliveryDelay: expected 0 or 15sec..8hour"),
        ("q flowControl=x", "queue", "flowControl: expected a size"),
        ("q store=", "queue", "store: expected a store name"),
        ("q maxbytes", "queue", "maxbytes: expected maxbytes=<value>"),
        ("q secure=yes", "queue", "secure: is a flag and takes no value"),
        ("q trace=ids", "queue", "trace: expected trace or trace=body"),
        ("q maxmsgs=1,maxmsgs=2", "queue", "maxmsgs: set twice on one line"),
        ("q failsafe,store=other", "queue", "store: failsafe and store= name different stores"),
        ('q store="abc', "queue", "unterminated quote"),
        ("t exclusive", "topic", "exclusive: not allowed on topics"),
        ("t maxRedelivery=3", "topic", "maxRedelivery: not allowed on topics"),
        ("t redeliveryDelay=30sec", "topic", "redeliveryDelay: not allowed on topics"),
        ("t prefetch=none", "topic", "prefetch: prefetch=none is not allowed on topics"),
        ("a..b", "queue", "destination name 'a..b' has an empty element"),
        ("foo.>.bar secure", "queue", "'>' must be the last element"),
        ("[jndi q", "queue", "missing ']' after JNDI names"),
        ("[jndi]", "queue", "missing destination name"),
    ],
)
def test_errors_name_file_and_line(tmp_path: Path, line: str, kind: Kind, message: str) -> None:
    path = tmp_path / f"{kind}s.conf"
    with pytest.raises(ConfigError, match=re.escape(f"{path}:3: ")) as exc:
        table(tmp_path, f"# header\n>\n{line}\n", kind)
    assert message in str(exc.value)
    assert exc.value.path == str(path) and exc.value.line == 3


def test_warnings(tmp_path: Path) -> None:
    t = table(tmp_path, "q bogus=1,secure\nq maxmsgs=5\nremote@EMS-PARIS\n")
    path = t.path
    assert t.warnings == [
        f"{path}:1: unknown property 'bogus'",
        f"{path}:2: 'q' already defined at line 1; the first definition wins",
        f"{path}:3: routed queue 'remote@EMS-PARIS' is not supported yet; ignored",
    ]
    q = t.resolve("q")
    assert q is not None and q.secure and q.maxmsgs == 0
    assert t.resolve("remote@EMS-PARIS") is None


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "queues.conf"
    with pytest.raises(ConfigError, match=re.escape(f"{path}: file not found")):
        load_destinations(path, "queue", required=True)
    t = load_destinations(path, "queue", required=False)
    assert t.warnings == [f"{path}: file not found; no queues are configured"]
    assert t.resolve("anything") is None
    assert t.static_names() == ["$sys.undelivered"]
    assert t.resolve("$sys.undelivered") == DestinationProps(static=True)


def test_bad_kind(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind must be"):
        load_destinations(tmp_path / "x", "table", required=False)  # type: ignore[arg-type]


# ---- resolution and inheritance ------------------------------------------------


def test_resolve_needs_a_matching_entry(tmp_path: Path) -> None:
    t = table(tmp_path, "foo.*\nbar\n")
    assert t.resolve("foo.a") == DestinationProps(static=False)
    assert t.resolve("foo.a.b") is None
    assert t.resolve("bar") == DestinationProps(static=True)
    assert t.resolve("baz") is None
    assert t.static_names() == ["bar", "$sys.undelivered"]


def test_undelivered_and_temporary_always_resolve(tmp_path: Path) -> None:
    t = table(tmp_path, "only.this\n")
    assert t.resolve("$sys.undelivered") == DestinationProps(static=True)
    assert t.resolve("$TMP$.EMS-SERVER.3.1") == DestinationProps(static=False)
    topics = table(tmp_path, "$TMP$.> maxmsgs=10\n", "topic")
    tmp = topics.resolve("$TMP$.EMS-SERVER.3.1")
    assert tmp is not None and tmp.maxmsgs == 10 and tmp.prefetch == 64
    assert "$sys.undelivered" not in topics.static_names()


def test_undelivered_entry_in_file_is_used(tmp_path: Path) -> None:
    t = table(tmp_path, "$sys.undelivered maxmsgs=7\n")
    assert t.static_names() == ["$sys.undelivered"]
    assert get(t, "$sys.undelivered").maxmsgs == 7


def test_flags_are_unioned(tmp_path: Path) -> None:
    text = "> secure\nfoo.* exclusive,trace\nfoo.bar sender_name\n"
    p = props(tmp_path, text, "foo.bar")
    assert p.secure and p.exclusive and p.sender_name and p.trace == "default"
    assert props(tmp_path, "foo.> trace=body\n> trace\n", "foo.x").trace == "body"


def test_child_value_overrides_parent(tmp_path: Path) -> None:
    text = "foo.* maxbytes=200,expiration=1min\nfoo.bar maxbytes=2000\nfoo.baz maxbytes=0\n"
    t = table(tmp_path, text)
    assert get(t, "foo.bar").maxbytes == 2000
    assert get(t, "foo.bar").expiration_ms == 60_000
    assert get(t, "foo.baz").maxbytes == 0
    assert get(t, "foo.qux").maxbytes == 200


def test_parents_most_restrictive_limit_wins(tmp_path: Path) -> None:
    text = "> maxbytes=1MB,maxmsgs=0\nfoo.> maxbytes=10MB,maxmsgs=50,maxRedelivery=4\n"
    text += "foo.* maxRedelivery=0,flowControl=1KB\n"
    p = props(tmp_path, text, "foo.x")
    assert p.maxbytes == 1024**2 and p.maxmsgs == 50
    assert p.max_redelivery == 4 and p.flow_control == 1024


def test_overflow_policy_precedence(tmp_path: Path) -> None:
    text = (
        "> overflowPolicy=discardOld\n"
        "a.> overflowPolicy=rejectIncoming\n"
        "a.* overflowPolicy=default\n"
        "a.own overflowPolicy=default\n"
    )
    t = table(tmp_path, text)
    assert get(t, "a.b").overflow_policy is OverflowPolicy.REJECT_INCOMING
    assert get(t, "a.own").overflow_policy is OverflowPolicy.DEFAULT
    assert get(t, "z").overflow_policy is OverflowPolicy.DISCARD_OLD


def test_prefetch_rules(tmp_path: Path) -> None:
    text = (
        "p.> prefetch=none\n"
        "p.* prefetch=20\n"
        "p.a.> prefetch=3\n"
        "n.> prefetch=none\n"
        "n.* prefetch=none\n"
        "n.x prefetch=0\n"
        "n.own prefetch=8\n"
        "z.> prefetch=0\n"
    )
    t = table(tmp_path, text)
    assert get(t, "p.a").prefetch == 20  # largest non-zero
    assert get(t, "p.a.b").prefetch == 3
    assert get(t, "n.y").prefetch == PREFETCH_NONE
    assert get(t, "n.x").prefetch == PREFETCH_NONE  # 0 inherits
    assert get(t, "n.own").prefetch == 8
    assert get(t, "z.q").prefetch == 5  # final default


def test_store_inheritance_and_conflict(tmp_path: Path) -> None:
    text = "a.> store=s1\na.* failsafe\na.b store=own\nb.> store=s1\nb.* store=s1\n"
    t = table(tmp_path, text)
    assert get(t, "a.b").store == "own"
    assert get(t, "b.c").store == "s1"
    assert get(t, "a.c.d").store == "s1"
    with pytest.raises(ConfigError) as exc:
        t.resolve("a.c")
    msg = str(exc.value)
    assert msg.startswith(f"{t.path}:1: store: 'a.c' inherits conflicting stores")
    assert f"'s1' from 'a.>' ({t.path}:1)" in msg
    assert f"'$sys.failsafe' from 'a.*' ({t.path}:2)" in msg


def test_store_conflict_on_static_entry_fails_at_load(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'x.y' inherits conflicting stores"):
        table(tmp_path, "x.> store=s1\nx.* store=s2\nx.y\n")


def test_resolve_is_cached(tmp_path: Path) -> None:
    t = table(tmp_path, "foo.> secure\n")
    first = t.resolve("foo.a")
    assert first is not None and t.resolve("foo.a") is first
    assert t.resolve("bar") is None and t.resolve("bar") is None
