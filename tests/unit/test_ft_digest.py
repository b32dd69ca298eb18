"""Configuration digests exchanged by FT peers (EMS.md 1.9)."""

from __future__ import annotations

from pathlib import Path

from emsfast.config.tibemsd import TibemsdConfig
from emsfast.ft.digest import SECTIONS, config_digest, describe, digest_differences


def config(tmp_path: Path, name: str, queues: str, users: str = "admin::\n") -> TibemsdConfig:
    d = tmp_path / name
    d.mkdir()
    (d / "queues.conf").write_text(queues)
    (d / "users.conf").write_text(users)
    return TibemsdConfig(queues=str(d / "queues.conf"), users=str(d / "users.conf"),
                         topics=str(d / "topics.conf"))


def test_comments_blanks_and_order_are_not_differences(tmp_path: Path) -> None:
    a = config(tmp_path, "a", "# mine\nq.a  secure\n\nq.b\n")
    b = config(tmp_path, "b", "q.b\nq.a secure\n# theirs\n")
    assert config_digest(a) == config_digest(b)
    assert set(config_digest(a)) == set(SECTIONS)


def test_each_differing_section_is_named(tmp_path: Path) -> None:
    a = config(tmp_path, "a", "q.a\n")
    b = config(tmp_path, "b", "q.a\nq.extra\n", users="admin::\nbob::\n")
    differ = digest_differences(config_digest(a), config_digest(b))
    assert differ == ["destinations", "users"]
    text = describe(differ, "'tcp://p:7222'")
    assert "destinations (queues, topics, durables)" in text and "users (users)" in text


def test_a_peer_without_digest_is_not_an_error() -> None:
    assert digest_differences({"users": "x"}, None) == []
