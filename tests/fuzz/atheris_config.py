"""Fuzz the EMS configuration parsers (``emsfast.config``).

Input: byte 0 picks the file kind (``KINDS``), the rest is the file's bytes,
written to a temporary file of the real name because the loaders read files.
Every loader must succeed or raise ``ConfigError`` naming the file; URL lists
(parsed from text) raise ``InvalidError``. A number that loads fits the int64
the server keeps it in, users and ACL lines that load format back (write-back)
to lines that parse to the same entry.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import instrumented, main, named  # noqa: E402

with instrumented(__name__):
    from emsfast.config.destinations import Kind, load_destinations
    from emsfast.config.durables import load_durables
    from emsfast.config.names import validate_destination_name
    from emsfast.config.sections import load_factories, load_routes
    from emsfast.config.security import (
        format_acl,
        format_user,
        load_acl,
        load_groups,
        load_users,
        parse_acl,
        parse_user,
    )
    from emsfast.config.stores import load_stores
    from emsfast.config.syntax import Line
    from emsfast.config.tibemsd import load_tibemsd
    from emsfast.config.urls import parse_url_groups
    from emsfast.config.writeback import ConfigText
    from emsfast.errors import ConfigError, InvalidError

_INT64 = 2**63


@functools.cache
def _dir() -> str:
    path = tempfile.mkdtemp(prefix="emsfast-fuzz-config-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def check_numbers(obj: Any) -> None:
    """Numbers a loader accepted fit the C int64 (or finite double) they end up in."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float):
            assert math.isfinite(value), (f.name, value)
        elif isinstance(value, int):
            assert -_INT64 <= value < _INT64, (f.name, value)


def _tibemsd(path: str) -> None:
    config = load_tibemsd(path)
    check_numbers(config)
    config.listen_urls  # noqa: B018 - parses the URLs the server would listen on
    config.ft_active_urls  # noqa: B018


def _destinations(kind: Kind) -> Callable[[str], None]:
    def load(path: str) -> None:
        table = load_destinations(path, kind, True)
        for name in table.static_names():
            concrete = name.replace(">", "x.y").replace("*", "x")
            try:
                validate_destination_name(concrete, wildcards=False)
            except InvalidError:
                continue
            props = table.resolve(concrete)
            assert props is not None
            check_numbers(props)
            # The server stamps expiration = now + expiration_ms into an int64.
            assert int(time.time() * 1000) + props.expiration_ms < _INT64

    return load


def _users(path: str) -> None:
    for user in load_users(path, True, []).values():
        again = parse_user(Line(path, 1, format_user(user)))
        assert (again.name, again.password, again.description) == (
            user.name, user.password, user.description), (user, again)


def _acl(path: str) -> None:
    for entry in load_acl(path, True, []):
        again = parse_acl(Line(path, 1, format_acl(entry)))
        assert (again.key, again.perms) == (entry.key, entry.perms), (entry, again)


def _text_round_trip(path: str) -> None:
    text = ConfigText.load(path)
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write(text.text())
    assert ConfigText.load(path).lines == text.lines


KINDS: tuple[tuple[str, Callable[[str], None]], ...] = (
    ("tibemsd.conf", _tibemsd),
    ("queues.conf", _destinations("queue")),
    ("topics.conf", _destinations("topic")),
    ("users.conf", _users),
    ("groups.conf", lambda path: None if load_groups(path, True, []) else None),
    ("acl.conf", _acl),
    ("stores.conf", lambda path: None if load_stores(path, _dir(), []) else None),
    ("durables.conf", lambda path: None if load_durables(path, True, []) else None),
    ("factories.conf", lambda path: None if load_factories(path, True, []) else None),
    ("routes.conf", lambda path: None if load_routes(path, True, []) else None),
    ("tibemsd.conf", _text_round_trip),
)
URLS = len(KINDS)  # the last kind: a client URL string, parsed from text


def test_one_input(data: bytes) -> None:
    if not data:
        return
    kind, content = data[0] % (URLS + 1), bytes(data[1:])
    if kind == URLS:
        try:
            parse_url_groups(content.decode("utf-8", "replace"))
        except InvalidError as exc:
            named(exc)
        return
    name, load = KINDS[kind]
    path = os.path.join(_dir(), name)
    with open(path, "wb") as f:
        f.write(content)
    try:
        load(path)
    except ConfigError as exc:
        named(exc)
        assert exc.path is not None and name in str(exc), str(exc)


if __name__ == "__main__":
    main(test_one_input)
