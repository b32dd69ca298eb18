"""stores.conf parsing (EMS.md 4.6): defaults, sections, file:line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emsfast.config.stores import FAILSAFE, META, NONFAILSAFE, load_stores
from emsfast.errors import ConfigError


def test_missing_file_gives_the_three_defaults(tmp_path: Path) -> None:
    stores = load_stores(tmp_path / "stores.conf", str(tmp_path / "ds"))
    assert set(stores) == {META, FAILSAFE, NONFAILSAFE}
    assert stores[FAILSAFE].sync and not stores[NONFAILSAFE].sync
    assert stores[META].path == os.path.join(str(tmp_path / "ds"), "meta.db")


def test_sample_file_and_user_store(tmp_path: Path) -> None:
    conf = tmp_path / "stores.conf"
    conf.write_text("[$sys.failsafe]\n type=file\n file=sync-msgs.db\n mode=sync\n"
                    "# audit\n[audit]\n  type = file\n  file = /abs/audit.db\n  mode = SYNC\n")
    stores = load_stores(conf, str(tmp_path))
    assert stores["audit"].path == "/abs/audit.db" and stores["audit"].sync
    assert set(stores) == {META, FAILSAFE, NONFAILSAFE, "audit"}


@pytest.mark.parametrize("text, where, words", [
    ("[a]\nfile=a.db\nmode=fast\n", ":3:", "mode: expected sync or async"),
    ("[a]\ntype=dbstore\nfile=a.db\n", ":2:", "not supported"),
    ("file=x.db\n", ":1:", "before any"),
    ("[a]\nmode=sync\n", ":1:", "needs a 'file'"),
    ("[a]\nfile=a.db\n[b]\nfile=a.db\n", ":4:", "already used by store 'a'"),
    ("[a]\nfile=a.db\n[a]\nfile=b.db\n", ":3:", "already defined at line 1"),
    ("[a]\nfile=a.db\ncolour=red\n", ":3:", "unknown store parameter"),
    ("[a\nfile=a.db\n", ":1:", "expected '[store name]'"),
])
def test_bad_lines_name_file_and_line(tmp_path: Path, text: str, where: str, words: str) -> None:
    conf = tmp_path / "stores.conf"
    conf.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_stores(conf, str(tmp_path))
    assert f"stores.conf{where}" in str(info.value) and words in str(info.value)


def test_later_keys_warn(tmp_path: Path) -> None:
    conf = tmp_path / "stores.conf"
    conf.write_text("[a]\nfile=a.db\nfile_crc=true\n")
    warnings: list[str] = []
    load_stores(conf, str(tmp_path), warnings)
    assert warnings and "file_crc" in warnings[0]
