"""``durables.conf`` (EMS.md 4.9): static durable subscriptions.

``topic durable-name [route] [clientid=id] [nolocal] [selector="..."]``; the
earliest definition of a durable wins, later ones warn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from emsfast.config.names import validate_destination_name
from emsfast.config.syntax import config_error, read_lines, split_list, unquote
from emsfast.errors import InvalidError


@dataclass(frozen=True, slots=True)
class StaticDurable:
    topic: str
    name: str
    client_id: str | None
    nolocal: bool
    selector: str | None
    where: str

    @property
    def key(self) -> str:
        return f"{self.client_id}:{self.name}" if self.client_id else self.name


def load_durables(path: str | os.PathLike[str], required: bool = False,
                  warnings: list[str] | None = None) -> list[StaticDurable]:
    name = os.fspath(path)
    if not required and not os.path.exists(name):
        return []
    out: list[StaticDurable] = []
    seen: dict[str, StaticDurable] = {}
    for line in read_lines(name):
        parts = line.text.split(None, 2)
        if len(parts) < 2:
            raise config_error(name, line.number, None,
                               "expected 'topic durable-name [options]'")
        topic, durable = parts[0], parts[1]
        try:
            validate_destination_name(topic, wildcards=True)
        except InvalidError as exc:
            raise config_error(name, line.number, None, str(exc)) from None
        client_id: str | None = None
        nolocal = False
        selector: str | None = None
        rest = parts[2] if len(parts) > 2 else ""
        if rest.split(None, 1)[:1] == ["route"]:
            if warnings is not None:
                warnings.append(f"{line.where}: routed durable {durable!r} is not "
                                "supported yet; ignored")
            continue
        try:
            for opt in split_list(rest):
                key, _, value = opt.partition("=")
                key = key.strip().lower()
                if key == "clientid" and value:
                    client_id = unquote(value.strip())
                elif key == "nolocal" and not value:
                    nolocal = True
                elif key == "selector" and value:
                    selector = unquote(value.strip())
                else:
                    raise ValueError(f"unknown option {opt!r}; expected clientid=, "
                                     "nolocal or selector=")
        except ValueError as exc:
            raise config_error(name, line.number, None, str(exc)) from None
        entry = StaticDurable(topic, durable, client_id, nolocal, selector, line.where)
        first = seen.get(entry.key)
        if first is not None:
            if warnings is not None:
                warnings.append(f"{line.where}: durable {entry.key!r} already defined at "
                                f"{first.where}; the first definition wins")
            continue
        seen[entry.key] = entry
        out.append(entry)
    return out
