"""Map/Stream body checks shared by client and server (emsfast/bodies.py)."""

from __future__ import annotations

import msgpack
import pytest

from emsfast.bodies import check_body, check_nesting
from emsfast.consts import BODY_MAP, BODY_STREAM, MAX_NESTING_DEPTH
from emsfast.errors import InvalidError


def deep_list(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_limit_is_inclusive() -> None:
    check_nesting(deep_list(MAX_NESTING_DEPTH), "StreamMessage")
    with pytest.raises(InvalidError, match="limit of 32"):
        check_nesting(deep_list(MAX_NESTING_DEPTH + 1), "StreamMessage")


def test_self_reference_is_an_error_not_a_hang() -> None:
    loop: dict[str, object] = {}
    loop["me"] = loop
    with pytest.raises(InvalidError):
        check_nesting(loop, "MapMessage")


def test_check_body_shapes() -> None:
    check_body(BODY_MAP, msgpack.packb({"a": [1, {"b": 2}]}))
    check_body(BODY_STREAM, msgpack.packb([1, 2]))
    with pytest.raises(InvalidError, match="expected a dict"):
        check_body(BODY_MAP, msgpack.packb([1]))
    with pytest.raises(InvalidError, match="not valid msgpack"):
        check_body(BODY_STREAM, b"\xc1")
    with pytest.raises(InvalidError, match="deeper"):
        check_body(BODY_STREAM, msgpack.packb(deep_list(1000)))
