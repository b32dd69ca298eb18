"""Destination name rules and wildcard matching (EMS.md 5.1, 5.2)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emsfast.config.names import (
    MAX_ELEMENT_LENGTH,
    MAX_ELEMENTS,
    MAX_NAME_LENGTH,
    WildcardPattern,
    compile_pattern,
    is_wildcard,
    validate_destination_name,
    wildcard_match,
)
from emsfast.errors import InvalidError


@pytest.mark.parametrize(
    "name",
    [
        "a",
        "queue.sample",
        "$sys.undelivered",
        "$TMP$.EMS.1.2",
        "a-b_c.d1",
        "x" * 127,
        ".".join(["a"] * MAX_ELEMENTS),
        "a" * MAX_ELEMENT_LENGTH + ".b",
    ],
)
def test_valid_names(name: str) -> None:
    validate_destination_name(name, wildcards=False)
    validate_destination_name(name, wildcards=True)


@pytest.mark.parametrize("name", [">", "*", "foo.>", "foo.*", "foo.*.bar", "*.>", "$TMP$.>"])
def test_valid_wildcards(name: str) -> None:
    validate_destination_name(name, wildcards=True)
    with pytest.raises(InvalidError, match="wildcards are not allowed here"):
        validate_destination_name(name, wildcards=False)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "destination name is empty"),
        ("a..b", "has an empty element"),
        (".a", "has an empty element"),
        ("a.", "has an empty element"),
        ("a b", "contains a space or control character"),
        ("a\tb", "contains a space or control character"),
        ("a\x00", "contains a space or control character"),
        ("x" * (MAX_NAME_LENGTH + 1), "is longer than 249 characters"),
        (".".join(["a"] * (MAX_ELEMENTS + 1)), "has more than 64 elements"),
        ("a" * (MAX_ELEMENT_LENGTH + 1), "element longer than 127 characters"),
        ("foo*", "'*' and '>' must be whole elements"),
        ("foo.b>", "'*' and '>' must be whole elements"),
        ("foo.>.bar", "'>' must be the last element"),
        (">.a", "'>' must be the last element"),
    ],
)
def test_invalid_names(name: str, problem: str) -> None:
    with pytest.raises(InvalidError, match=re.escape(problem)):
        validate_destination_name(name, wildcards=True)


def test_is_wildcard() -> None:
    assert is_wildcard(">") and is_wildcard("a.*") and is_wildcard("a.*.b")
    assert not is_wildcard("a.b") and not is_wildcard("a*b") and not is_wildcard("a.b>")


@pytest.mark.parametrize(
    ("pattern", "name", "match"),
    [
        (">", "a", True),
        (">", "a.b.c", True),
        ("foo.>", "foo.a", True),
        ("foo.>", "foo.a.b", True),
        ("foo.>", "foo", False),
        ("foo.>", "foobar.a", False),
        ("foo.*", "foo.a", True),
        ("foo.*", "foo.a.b", False),
        ("foo.*", "foo", False),
        ("foo.*.bar", "foo.x.bar", True),
        ("foo.*.bar", "foo.bar", False),
        ("foo.*.bar", "foo.x.y.bar", False),
        ("*", "a", True),
        ("*", "a.b", False),
        ("*.>", "a.b", True),
        ("*.>", "a", False),
        ("a.*.>", "a.b.c.d", True),
        ("a.*.>", "a.b", False),
        ("a.b", "a.b", True),
        ("a.b", "a.bc", False),
        ("$TMP$.>", "$TMP$.srv.1", True),
        ("a+b.*", "a+b.c", True),
        ("a+b.*", "aab.c", False),
    ],
)
def test_wildcard_match(pattern: str, name: str, match: bool) -> None:
    assert wildcard_match(pattern, name) is match
    assert WildcardPattern(pattern)(name) is match


def test_compiled_pattern_object() -> None:
    p = compile_pattern("foo.*")
    assert p is compile_pattern("foo.*")  # cached
    assert p.pattern == "foo.*" and p.wildcard
    assert p == WildcardPattern("foo.*") and hash(p) == hash(WildcardPattern("foo.*"))
    assert not compile_pattern("a.b").wildcard
    assert repr(p) == "WildcardPattern('foo.*')"


_element = st.sampled_from(["a", "b", "cd"])
_name = st.lists(_element, min_size=1, max_size=5).map(".".join)
_pattern = (
    st.lists(st.sampled_from(["a", "b", "cd", "*"]), min_size=1, max_size=5)
    .flatmap(lambda els: st.sampled_from([els, [*els, ">"]]))
    .map(".".join)
)


def _reference(pattern: str, name: str) -> bool:
    pe, ne = pattern.split("."), name.split(".")
    for i, p in enumerate(pe):
        if p == ">":
            return len(ne) > i
        if i >= len(ne) or (p != "*" and p != ne[i]):
            return False
    return len(pe) == len(ne)


@settings(max_examples=300, deadline=None)
@given(_pattern, _name)
def test_match_agrees_with_element_reference(pattern: str, name: str) -> None:
    assert wildcard_match(pattern, name) is _reference(pattern, name)
