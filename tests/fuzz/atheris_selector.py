"""Fuzz the selector parser and evaluator (``emsfast.selector``).

Input: selector text (UTF-8, bad bytes replaced), then optionally a NUL byte
and a msgpack map of message properties. The selector is compiled, evaluated
against a real message (the server's field getter over an encoded blob) and
against the plain property dict, and printed back with ``unparse``: the printed
form must parse to the same text again and select the same messages.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _harness import instrumented, main, named  # noqa: E402

with instrumented(__name__):
    import msgpack

    from emsfast._core.dispatch import parse_publish_message
    from emsfast._core.message import encode_message
    from emsfast.errors import SelectorError
    from emsfast.selector import compile_selector
    from emsfast.selector._ast import unparse

DEFAULT_PROPS: dict[str, Any] = {"a": 1, "b": 2.5, "s": "ab%_c", "t": True, "n": None}
HEADERS = {"dest": "q:orders", "cid": "c-1", "type": "order"}
# Long enough for anything unparse prints from a selector under the default cap.
MAX_PRINTED = 1 << 20


def _properties(raw: bytes) -> dict[str, Any]:
    try:
        obj = msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception:
        return DEFAULT_PROPS
    if not isinstance(obj, dict):
        return DEFAULT_PROPS
    props = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not key:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            if not -(2**63) <= value < 2**64:
                continue
        elif value is not None and not isinstance(value, bool | float | str | bytes):
            continue
        props[key] = value
    return props


def test_one_input(data: bytes) -> None:
    text_raw, _, props_raw = bytes(data).partition(b"\x00")
    text = text_raw.decode("utf-8", "replace")
    try:
        sel = compile_selector(text)
    except SelectorError as exc:
        named(exc)
        assert str(exc).startswith("selector "), str(exc)
        return
    if sel is None:
        return
    props = _properties(props_raw)
    blob = encode_message(1, 2, 4, 1_700_000_000_000, 0, HEADERS, props, b"")
    msg = parse_publish_message(b"\x00" * 12 + blob, 42, 1)[2]
    for get in (msg.field_getter("EMS-SERVER", 0), props.get):
        result = sel.matches(get)
        assert type(result) is bool, (text, result)

    printed = unparse(sel.tree)
    try:
        again = compile_selector(printed, max_length=MAX_PRINTED)
    except SelectorError as exc:
        # Printing parenthesises every operation, so a selector near the
        # nesting cap can print deeper than it parsed.
        assert "deeper than" in str(exc), (text, printed, str(exc))
        return
    assert again is not None
    assert unparse(again.tree) == printed, (text, printed)
    get = msg.field_getter("EMS-SERVER", 0)
    assert again.matches(get) == sel.matches(get), (text, printed)
    assert again.identifiers == sel.identifiers


if __name__ == "__main__":
    main(test_one_input)
