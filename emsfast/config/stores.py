"""``stores.conf`` (EMS.md 4.6): named stores, each an LMDB environment.

Sections ``[name]`` followed by ``key = value`` lines. A missing file yields the
three default stores; a file that omits one of them gets it added, since the
server always needs ``$sys.meta`` and the two message stores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from emsfast.config.syntax import config_error, parse_assignment, read_lines

META = "$sys.meta"
FAILSAFE = "$sys.failsafe"
NONFAILSAFE = "$sys.nonfailsafe"

_KEYS = frozenset({"type", "file", "mode"})
# Real EMS keys we accept and ignore (LMDB has no equivalent yet).
_LATER_KEYS = frozenset({"file_crc", "file_minimum", "file_truncate",
                         "file_destination_defrag"})
_OUT_TYPES = frozenset({"mstore", "dbstore", "as", "ftl"})


@dataclass(frozen=True, slots=True)
class StoreConfig:
    name: str
    file: str           # as written (relative to the store directory, or absolute)
    path: str           # absolute path of the LMDB environment directory
    sync: bool          # mode=sync: confirm only after the fsync
    where: str = "<default>"


_DEFAULTS = ((META, "meta.db", False), (FAILSAFE, "sync-msgs.db", True),
             (NONFAILSAFE, "async-msgs.db", False))


def default_stores(store_dir: str) -> dict[str, StoreConfig]:
    return {name: StoreConfig(name, file, os.path.join(os.path.abspath(store_dir), file), sync)
            for name, file, sync in _DEFAULTS}


def load_stores(path: str | os.PathLike[str], store_dir: str,
                warnings: list[str] | None = None) -> dict[str, StoreConfig]:
    """Read ``path``; a missing file means the default stores."""
    name = os.fspath(path)
    stores = default_stores(store_dir)
    if not os.path.exists(name):
        return stores
    sections: dict[str, dict[str, tuple[str, int]]] = {}
    lines_of: dict[str, int] = {}
    current: str | None = None
    for line in read_lines(name):
        text = line.text
        if text.startswith("["):
            if not text.endswith("]") or len(text) < 3:
                raise config_error(name, line.number, None,
                                   f"expected '[store name]', got {text!r}")
            current = text[1:-1].strip()
            if current in sections:
                raise config_error(name, line.number, None,
                                   f"store {current!r} already defined at line "
                                   f"{lines_of[current]}")
            sections[current] = {}
            lines_of[current] = line.number
            continue
        item = parse_assignment(line)
        if current is None:
            raise config_error(name, line.number, item.key,
                               "a 'key = value' line before any '[store name]' section")
        if item.key in _LATER_KEYS:
            if warnings is not None:
                warnings.append(f"{item.where}: {item.key} is not supported yet; ignored")
            continue
        if item.key not in _KEYS:
            raise config_error(name, line.number, item.key,
                               f"unknown store parameter; expected one of {', '.join(sorted(_KEYS))}")
        sections[current][item.key] = (item.value, line.number)
    files: dict[str, str] = {}
    for store, keys in sections.items():
        where = f"{name}:{lines_of[store]}"
        kind, kline = keys.get("type", ("file", lines_of[store]))
        if kind.lower() in _OUT_TYPES:
            raise config_error(name, kline, "type", f"store type {kind!r} is not supported; "
                               "only type=file (an LMDB environment) is")
        if kind.lower() != "file":
            raise config_error(name, kline, "type", f"expected file, got {kind!r}")
        mode, mline = keys.get("mode", ("async", lines_of[store]))
        if mode.lower() not in ("sync", "async"):
            raise config_error(name, mline, "mode", f"expected sync or async, got {mode!r}")
        default = stores.get(store)
        if "file" in keys:
            file, fline = keys["file"]
        elif default is not None:
            file, fline = default.file, lines_of[store]
        else:
            raise config_error(name, lines_of[store], "file",
                               f"store {store!r} needs a 'file' parameter")
        if not file:
            raise config_error(name, fline, "file", "expected a file name")
        full = file if os.path.isabs(file) else os.path.join(os.path.abspath(store_dir), file)
        full = os.path.normpath(full)
        if full in files:
            raise config_error(name, fline, "file",
                               f"{file!r} is already used by store {files[full]!r}")
        files[full] = store
        stores[store] = StoreConfig(store, file, full, mode.lower() == "sync", where)
    # Defaults not overridden must not collide with a user store's file either.
    for store, cfg in stores.items():
        if store not in sections and cfg.path in files:
            raise config_error(name, None, "file",
                               f"{cfg.file!r} is used by store {files[cfg.path]!r} but is "
                               f"also the default file of {store!r}")
    return stores
