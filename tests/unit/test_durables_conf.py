"""durables.conf (EMS.md 4.9): static durables, first definition wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from emsfast.config.durables import load_durables
from emsfast.errors import ConfigError


def test_entries_options_and_conflicts(tmp_path: Path) -> None:
    conf = tmp_path / "durables.conf"
    conf.write_text('# static\nprices.eu   archiver  clientid=arch01\n'
                    'prices.us   watcher   clientid=w01,nolocal,selector="size > 100, ok"\n'
                    'prices.>    EMS-PARIS route\n'
                    'other       archiver  clientid=arch01\n'
                    'plain       shared\n')
    warnings: list[str] = []
    got = load_durables(conf, warnings=warnings)
    assert [(d.key, d.topic, d.nolocal, d.selector) for d in got] == [
        ("arch01:archiver", "prices.eu", False, None),
        ("w01:watcher", "prices.us", True, "size > 100, ok"),
        ("shared", "plain", False, None)]
    assert "route" in warnings[0] and "first definition wins" in warnings[1]


def test_missing_file_is_empty_unless_named(tmp_path: Path) -> None:
    assert load_durables(tmp_path / "none.conf") == []
    with pytest.raises(ConfigError, match="file not found"):
        load_durables(tmp_path / "none.conf", required=True)


@pytest.mark.parametrize("line, words", [
    ("lonely\n", "expected 'topic durable-name"),
    ("t  d  colour=red\n", "unknown option"),
    ("t..x  d\n", ""),
])
def test_bad_lines_name_the_line(tmp_path: Path, line: str, words: str) -> None:
    conf = tmp_path / "durables.conf"
    conf.write_text("ok  fine\n" + line)
    with pytest.raises(ConfigError) as info:
        load_durables(conf)
    assert "durables.conf:2:" in str(info.value) and words in str(info.value)
