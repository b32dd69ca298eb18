"""Destination names and wildcards (EMS.md 5.1, 5.2).

``*`` stands for exactly one element, ``>`` for one or more trailing elements
(alone it matches every name). Topic publish checks every subscription
pattern, so patterns are compiled once into a ``WildcardPattern`` whose call
does a dict-free string test where it can and a C regex otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from emsfast.errors import InvalidError

# EMS limits: it reserves part of 255 characters for internal use.
MAX_NAME_LENGTH = 249
MAX_ELEMENTS = 64
MAX_ELEMENT_LENGTH = 127

_BAD_CHARS_RE = re.compile(r"[\x00-\x20\x7f]")


def validate_destination_name(name: str, *, wildcards: bool) -> None:
    """Raise ``InvalidError`` naming the problem if ``name`` is not a legal name.

    ``wildcards`` allows ``*`` and ``>`` (config entries, topic subscribers);
    producers, queue receivers and browsers need concrete names.
    """
    if not name:
        raise InvalidError("destination name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidError(
            f"destination name {_clip(name)!r} is longer than {MAX_NAME_LENGTH} characters"
        )
    bad = _BAD_CHARS_RE.search(name)
    if bad is not None:
        raise InvalidError(f"destination name {name!r} contains a space or control character")
    elements = name.split(".")
    if len(elements) > MAX_ELEMENTS:
        raise InvalidError(
            f"destination name {_clip(name)!r} has more than {MAX_ELEMENTS} elements"
        )
    last = len(elements) - 1
    for i, element in enumerate(elements):
        if not element:
            raise InvalidError(f"destination name {name!r} has an empty element")
        if len(element) > MAX_ELEMENT_LENGTH:
            raise InvalidError(
                f"destination name {_clip(name)!r} has an element longer than "
                f"{MAX_ELEMENT_LENGTH} characters"
            )
        if element in ("*", ">"):
            if not wildcards:
                raise InvalidError(f"destination name {name!r}: wildcards are not allowed here")
            if element == ">" and i != last:
                raise InvalidError(f"destination name {name!r}: '>' must be the last element")
        elif "*" in element or ">" in element:
            raise InvalidError(f"destination name {name!r}: '*' and '>' must be whole elements")


def is_wildcard(name: str) -> bool:
    """True if some element of ``name`` is ``*`` or ``>``."""
    if "*" not in name and ">" not in name:
        return False
    return any(e in ("*", ">") for e in name.split("."))


class WildcardPattern:
    """A compiled pattern; call it with a concrete name to test for a match."""

    __slots__ = ("pattern", "wildcard", "_test")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.wildcard = is_wildcard(pattern)
        self._test = _compile(pattern, self.wildcard)

    def __call__(self, name: str) -> bool:
        return self._test(name)

    def __repr__(self) -> str:
        return f"WildcardPattern({self.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WildcardPattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)


@lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> WildcardPattern:
    """Compile (and cache) ``pattern``; does not validate it."""
    return WildcardPattern(pattern)


def wildcard_match(pattern: str, name: str) -> bool:
    """True if the concrete ``name`` matches ``pattern`` (or equals it)."""
    return compile_pattern(pattern)(name)


def _compile(pattern: str, wildcard: bool) -> Callable[[str], bool]:
    if not wildcard:
        return pattern.__eq__
    if pattern == ">":
        return bool  # any non-empty name
    elements = pattern.split(".")
    if elements[-1] == ">" and "*" not in elements:
        prefix = pattern[:-1]  # "foo.bar." — '>' needs at least one more element
        plen = len(prefix)
        return lambda name: len(name) > plen and name.startswith(prefix)
    parts: list[str] = []
    for element in elements:
        if element == "*":
            parts.append(r"[^.]+")
        elif element == ">":
            parts.append(r".+")
        else:
            parts.append(re.escape(element))
    regex = re.compile(r"\.".join(parts), re.DOTALL)
    return lambda name: regex.fullmatch(name) is not None


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
