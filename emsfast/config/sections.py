"""Section files: ``factories.conf`` and ``routes.conf`` (EMS.md 4.5, 4.7).

``[name]`` starts a section; ``key = value`` lines below it belong to it. Only
parsing and validation live here: factories are served to JNDI clients later, and
routes are [later] (EMS.md 4.7), but both files are read so errors surface at start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from emsfast.config.syntax import Item, config_error, parse_assignment, read_lines
from emsfast.config.urls import parse_url_list

FACTORY_TYPES = frozenset({"generic", "xageneric", "topic", "queue", "xatopic", "xaqueue"})
MAX_URL_LENGTH = 1000
MAX_CLIENT_ID_LENGTH = 255


@dataclass(slots=True)
class Section:
    name: str
    path: str
    line: int
    items: dict[str, Item] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def get(self, key: str, default: str = "") -> str:
        item = self.items.get(key)
        return item.value if item is not None else default


def load_sections(path: str, required: bool, warnings: list[str]) -> list[Section]:
    if not os.path.exists(path):
        if required:
            raise config_error(path, None, None, "file not found")
        return []
    sections: list[Section] = []
    seen: dict[str, Section] = {}
    for line in read_lines(path):
        text = line.text
        if text.startswith("["):
            if not text.endswith("]") or len(text) < 3:
                raise config_error(line.path, line.number, None,
                                   f"expected '[name]', got {text!r}")
            name = text[1:-1].strip()
            if name in seen:
                raise config_error(line.path, line.number, None,
                                   f"section [{name}] already defined at {seen[name].where}")
            section = Section(name, line.path, line.number)
            seen[name] = section
            sections.append(section)
            continue
        if not sections:
            raise config_error(line.path, line.number, None,
                               f"{text!r} before the first [section]")
        item = parse_assignment(line)
        if item.key in sections[-1].items:
            warnings.append(f"{item.where}: {item.key} set twice in [{sections[-1].name}]")
        sections[-1].items[item.key] = item
    return sections


def _check_url(section: Section, item: Item) -> None:
    if len(item.value) > MAX_URL_LENGTH:
        raise config_error(item.path, item.line, "url",
                           f"longer than {MAX_URL_LENGTH} characters")
    try:
        parse_url_list(item.value)
    except ValueError as exc:
        raise config_error(item.path, item.line, "url", str(exc)) from None


def load_factories(path: str, required: bool, warnings: list[str]) -> list[Section]:
    sections = load_sections(path, required, warnings)
    for section in sections:
        kind = section.items.get("type")
        if kind is None:
            raise config_error(section.path, section.line, "type",
                               f"factory [{section.name}] has no type")
        if kind.value.lower() not in FACTORY_TYPES:
            raise config_error(kind.path, kind.line, "type",
                               f"expected one of {', '.join(sorted(FACTORY_TYPES))}, "
                               f"got {kind.value!r}")
        url = section.items.get("url")
        if url is None:
            raise config_error(section.path, section.line, "url",
                               f"factory [{section.name}] has no url")
        _check_url(section, url)
        client_id = section.items.get("clientid")
        if client_id is not None and len(client_id.value) > MAX_CLIENT_ID_LENGTH:
            raise config_error(client_id.path, client_id.line, "clientID",
                               f"longer than {MAX_CLIENT_ID_LENGTH} characters")
    return sections


def load_routes(path: str, required: bool, warnings: list[str]) -> list[Section]:
    sections = load_sections(path, required, warnings)
    for section in sections:
        url = section.items.get("url")
        if url is None:
            raise config_error(section.path, section.line, "url",
                               f"route [{section.name}] has no url")
        _check_url(section, url)
        zone = section.get("zone_type", "mhop").lower()
        if zone not in ("1hop", "mhop"):
            item = section.items["zone_type"]
            raise config_error(item.path, item.line, "zone_type",
                               f"expected 1hop or mhop, got {item.value!r}")
    return sections


def check_section_files(factories: str, factories_set: bool, routes: str,
                        routes_set: bool) -> list[str]:
    """Read factories.conf and routes.conf at start so their errors stop the server."""
    warnings: list[str] = []
    load_factories(factories, factories_set, warnings)
    load_routes(routes, routes_set, warnings)
    return warnings
