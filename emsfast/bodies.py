"""Checks on Map and Stream bodies shared by the client and the server."""

from __future__ import annotations

from typing import Any

import msgpack

from emsfast.consts import BODY_MAP, BODY_STREAM, MAX_NESTING_DEPTH
from emsfast.errors import InvalidError

_NAMES = {BODY_MAP: "MapMessage", BODY_STREAM: "StreamMessage"}


def check_nesting(value: dict[str, Any] | list[Any], what: str) -> None:
    """InvalidError if maps and lists in ``value`` nest deeper than MAX_NESTING_DEPTH.

    Iterative, so a hostile or self-referencing body cannot exhaust the stack.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING_DEPTH:
            raise InvalidError(
                f"{what} body nests maps/lists deeper than the limit of {MAX_NESTING_DEPTH} levels"
            )
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list | tuple):
                stack.append((child, depth + 1))


def check_body(body_type: int, body: bytes) -> None:
    """Validate a received Map/Stream body: msgpack of the right shape, nesting
    within the limit. InvalidError says what is wrong."""
    what = _NAMES[body_type]
    n = len(body)
    try:
        # Every size the sender controls is capped by the bytes it actually sent.
        # strict_map_key as in the client's decode: a map key it cannot read
        # (an int, a nil) would make the message unreadable to every consumer.
        value = msgpack.unpackb(body, raw=False, strict_map_key=True, max_str_len=n,
                                max_bin_len=n, max_array_len=n, max_map_len=n, max_ext_len=n)
    except Exception as exc:
        raise InvalidError(f"{what} body is not valid msgpack: {exc}") from exc
    expected = dict if body_type == BODY_MAP else list
    if not isinstance(value, expected):
        raise InvalidError(f"{what} body is a msgpack {type(value).__name__}, "
                           f"expected a {expected.__name__}")
    check_nesting(value, what)
