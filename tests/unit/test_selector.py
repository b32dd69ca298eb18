"""JMS selector semantics: a (selector, message, expected) table plus error cases.

``expected`` is the SQL three-valued result: True, False or None (UNKNOWN).
A message is selected only on True; UNKNOWN is told apart from False by also
checking ``NOT (selector)``, which is False for UNKNOWN and True for False.
"""

from __future__ import annotations

from typing import Any

import pytest

from emsfast.errors import ErrorCode, InvalidError, SelectorError
from emsfast.selector import (
    JMS_HEADERS,
    MAX_SELECTOR_LENGTH,
    Selector,
    compile_selector,
)
from emsfast.selector._compiler import like_matcher

# Booleans t/f, absent n (NULL); numbers; strings.
MSG: dict[str, Any] = {
    "t": True,
    "f": False,
    "k": 5,
    "x": 2.5,
    "z": 0,
    "big": 2**63 - 1,
    "s": "red",
    "s2": "blue",
    "e": "",
    "nl": "a\nb",
    "JMSPriority": 7,
    "JMSDeliveryMode": "PERSISTENT",
    "JMSMessageID": "ID:emsfast.1",
    "JMSTimestamp": 1_700_000_000_000,
    "JMSCorrelationID": None,
    "JMSType": "order",
    "JMSRedelivered": False,
    "JMSExpiration": 0,
    "JMSXDeliveryCount": 2,
    "JMSXGroupID": "g1",
    "$dollar": 1,
    "_under": 2,
    "größe": 3,
    "K": 50,
}


def tri(selector: str, msg: dict[str, Any] | None = None) -> bool | None:
    get = (MSG if msg is None else msg).get
    sel = compile_selector(selector)
    neg = compile_selector(f"NOT ({selector})")
    assert sel is not None and neg is not None
    yes, no = sel.matches(get), neg.matches(get)
    assert isinstance(yes, bool) and isinstance(no, bool)
    assert not (yes and no), selector
    return True if yes else False if no else None


T, F, U = True, False, None

CASES: list[tuple[str, bool | None]] = [
    # -- three-valued logic: t TRUE, f FALSE, n NULL ----------------------------
    ("t", T), ("f", F), ("n", U),
    ("t AND t", T), ("t AND f", F), ("t AND n", U),
    ("f AND t", F), ("f AND f", F), ("f AND n", F),
    ("n AND t", U), ("n AND f", F), ("n AND n", U),
    ("t OR t", T), ("t OR f", T), ("t OR n", T),
    ("f OR t", T), ("f OR f", F), ("f OR n", U),
    ("n OR t", T), ("n OR f", U), ("n OR n", U),
    ("NOT t", F), ("NOT f", T), ("NOT n", U),
    ("NOT NOT n", U), ("NOT NOT t", T),
    ("t AND t AND n", U), ("t AND f AND n", F), ("f OR n OR t", T), ("f OR f OR n", U),
    ("s", U),  # a string is not a boolean
    ("k", U),
    ("TRUE", T), ("FALSE", F), ("true AND NOT false", T),
    # -- keywords are case-insensitive, identifiers are not ---------------------
    ("k = 5 and s = 'red'", T), ("k = 6 oR s = 'red'", T), ("Not k = 6", T),
    ("K = 50", T), ("k = 50", F),
    ("k bEtWeEn 1 AnD 9", T), ("s iN ('red')", T), ("s LiKe 'r%'", T), ("n iS nUlL", T),
    ("s LIKE 'r!%' escape '!'", F),
    # -- identifiers: Java rules ------------------------------------------------
    ("$dollar = 1", T), ("_under = 2", T), ("größe = 3", T), ("JMSXGroupID = 'g1'", T),
    # -- numeric literals -----------------------------------------------------
    ("k = 5L", T), ("k = 5l", T), ("k = 0x5", T), ("k = 0X05L", T), ("k = 5.0", T),
    ("k = 5e0", T), ("k = 50E-1", T), ("k = 5F", T), ("k = 5.0d", T), ("x = 2.5f", T),
    ("x = .25e1", T), ("k = 5.", T), ("x = 25e-1D", T),
    ("big = 9223372036854775807", T), ("big > 9.2e18", T),
    ("-k = -5", T), ("k > -9223372036854775808", T),
    # -- comparison: numbers across int and float -------------------------------
    ("k = 5", T), ("k = 4", F), ("k <> 4", T), ("k <> 5", F),
    ("k < 6", T), ("k < 5", F), ("k <= 5", T), ("k <= 4", F),
    ("k > 4", T), ("k > 5", F), ("k >= 5", T), ("k >= 6", F),
    ("x > 2", T), ("x < 3", T), ("x = 2.5", T), ("k > x", T), ("x >= k", F),
    ("6 > k", T), ("5 = k", T), ("4 >= k", F), ("1 < 2", T), ("2.0 = 2", T),
    ("k = n", U), ("n = n", U), ("n < 1", U), ("n <> 1", U), ("1 > n", U),
    # strings and booleans: = and <> only; unlike types → UNKNOWN
    ("s = 'red'", T), ("s = 'Red'", F), ("s <> 'red'", F), ("s <> 'blue'", T),
    ("'red' = s", T), ("s = s2", F), ("s <> s2", T), ("e = ''", T),
    ("s = 'it''s'", F), ("JMSMessageID = 'ID:emsfast.1'", T),
    ("t = TRUE", T), ("t = FALSE", F), ("f <> TRUE", T), ("t = f", F), ("t <> f", T),
    ("(k > 1) = TRUE", T), ("(k > 1) = (x > 1)", T), ("(n > 1) = TRUE", U),
    ("s = k", U), ("k = s", U), ("k = t", U), ("t = 1", U), ("s = t", U), ("s = 5", U),
    ("s > s2", U), ("s < s2", U), ("t > f", U), ("s >= 1", U), ("t < 2", U),
    ("k = '5'", U), ("NOT (k = '5')", U),
    # -- arithmetic and precedence ----------------------------------------------
    ("k + 1 = 6", T), ("k - 1 = 4", T), ("k * 2 = 10", T), ("k / 2 = 2.5", T),
    ("k / 2.0 = 2.5", T), ("x * 2 = 5", T), ("1 + 2 * 3 = 7", T), ("(1 + 2) * 3 = 9", T),
    ("10 - 4 - 3 = 3", T), ("24 / 4 / 2 = 3", T), ("2 * 3 + 4 * 5 = 26", T),
    ("-k * 2 = -10", T), ("- -k = 5", T), ("+k = 5", T), ("-(k - 10) = 5", T),
    ("k + 1 > 5 AND k - 1 < 5", T), ("k * k = 25", T), ("k + x = 7.5", T),
    ("k / 0 = 1", U), ("k / z > 0", U), ("1 / 0 = 1", U), ("NOT (k / z = 1)", U),
    ("s + 1 = 2", U), ("t + 1 = 2", U), ("-s = 1", U), ("-t = 1", U), ("n + 1 = 1", U),
    ("k * s = 1", U), ("1 + n = 2", U),
    ("big * 10 > big", T), ("big * 1e308 > 0", T),  # float overflow is +inf, as in Java
    ("big" + " * big" * 16 + " * 1.5 > 0", U),  # int too large for a float → UNKNOWN
    ("t OR f AND f", T),  # AND binds tighter than OR
    ("(t OR f) AND f", F),
    ("NOT f AND f", F),  # NOT binds tighter than AND
    ("NOT (f AND f)", T),
    ("NOT k = 6", T),  # comparison binds tighter than NOT
    ("k = 1 OR k = 5 AND s = 'red'", T), ("k = 5 OR k = 1 AND s = 'x'", T),
    ("(k = 5 OR k = 1) AND s = 'x'", F),
    ("k + 1 BETWEEN 5 + 1 AND 2 * 3", T), ("k * 2 > k + 4 OR f", T),
    # -- BETWEEN ------------------------------------------------------------
    ("k BETWEEN 1 AND 10", T), ("k BETWEEN 5 AND 5", T), ("k BETWEEN 6 AND 10", F),
    ("k BETWEEN 1 AND 4", F), ("k BETWEEN 10 AND 1", F), ("x BETWEEN 2 AND 3", T),
    ("k BETWEEN 4.5 AND 5.5", T), ("k NOT BETWEEN 1 AND 10", F),
    ("k NOT BETWEEN 6 AND 10", T), ("n BETWEEN 1 AND 10", U), ("n NOT BETWEEN 1 AND 10", U),
    ("s BETWEEN 1 AND 10", U), ("t NOT BETWEEN 1 AND 10", U),
    ("k BETWEEN n AND 3", F), ("k BETWEEN n AND 10", U), ("k NOT BETWEEN n AND 3", T),
    ("k BETWEEN 1 AND n", U), ("k BETWEEN 6 AND n", F), ("k BETWEEN s AND 10", U),
    ("k BETWEEN z AND x * 4", T), ("k BETWEEN 1 AND 10 AND f", F),
    ("k BETWEEN 1 / 0 AND 3", F), ("k NOT BETWEEN 1 / 0 AND 9", U),
    # -- IN -----------------------------------------------------------------
    ("s IN ('red', 'green')", T), ("s IN ('green')", F), ("s NOT IN ('green', 'x')", T),
    ("s NOT IN ('red')", F), ("n IN ('red')", U), ("n NOT IN ('red')", U),
    ("k IN ('5')", U), ("t NOT IN ('true')", U), ("e IN ('')", T),
    ("JMSType IN ('order', 'invoice')", T), ("s IN ('it''s', 'red')", T),
    # -- LIKE ---------------------------------------------------------------
    ("s LIKE 'red'", T), ("s LIKE 're'", F), ("s LIKE 'r%'", T), ("s LIKE '%d'", T),
    ("s LIKE '%e%'", T), ("s LIKE '%x%'", F), ("s LIKE 'r_d'", T), ("s LIKE 'r_'", F),
    ("s LIKE '___'", T), ("s LIKE '____'", F), ("s LIKE '%'", T), ("e LIKE '%'", T),
    ("e LIKE '_'", F), ("s LIKE 'R%'", F), ("s LIKE '_e%'", T), ("s LIKE '%e_'", T),
    ("s LIKE 'r%d'", T), ("s LIKE 'r%e%d'", T), ("s LIKE 'r%d%e'", F),
    ("s LIKE '%%'", T), ("s LIKE 'red%'", T), ("s LIKE '%red'", T), ("s LIKE 'red_'", F),
    ("s NOT LIKE 'r%'", F), ("s NOT LIKE 'b%'", T), ("n LIKE '%'", U), ("n NOT LIKE 'a'", U),
    ("k LIKE '5'", U), ("t NOT LIKE '%'", U),
    ("nl LIKE 'a_b'", T), ("nl LIKE 'a%'", T),  # wildcards match newlines
    ("s LIKE 'r.d'", F), ("s LIKE '[r]ed'", F), ("s LIKE 'r*'", F),  # regex chars literal
    ("JMSMessageID LIKE 'ID:%'", T), ("s2 LIKE 'b%u_'", T), ("s2 LIKE '_l%e'", T),
    # -- IS NULL ------------------------------------------------------------
    ("n IS NULL", T), ("n IS NOT NULL", F), ("k IS NULL", F), ("k IS NOT NULL", T),
    ("f IS NULL", F), ("e IS NOT NULL", T), ("k + 1 IS NULL", F), ("s + 1 IS NULL", T),
    ("(k > 1) IS NOT NULL", T), ("(n > 1) IS NULL", T), ("k IS NULL OR s IS NOT NULL", T),
    # -- header identifiers (the getter maps them) ------------------------------
    ("JMSPriority > 4", T), ("JMSPriority BETWEEN 0 AND 4", F),
    ("JMSDeliveryMode = 'PERSISTENT'", T), ("JMSDeliveryMode = 'NON_PERSISTENT'", F),
    ("JMSCorrelationID IS NULL", T), ("JMSCorrelationID = 'c'", U),
    ("JMSType = 'order'", T), ("JMSRedelivered = FALSE", T), ("JMSRedelivered", F),
    ("JMSExpiration = 0", T), ("JMSTimestamp > 1600000000000", T),
    ("JMSXDeliveryCount > 1", T),
    # -- whitespace ---------------------------------------------------------
    ("\tk\n=\r5\f", T), ("k=5 AND(s='red')", T),
]  # fmt: skip


@pytest.mark.parametrize(("selector", "expected"), CASES)
def test_table(selector: str, expected: bool | None) -> None:
    assert tri(selector) is expected


@pytest.mark.parametrize(
    ("pattern", "escape", "text", "expected"),
    [
        ("100!%", "!", "100%", True),
        ("100!%", "!", "1000", False),
        ("a!_b", "!", "a_b", True),
        ("a!_b", "!", "axb", False),
        ("a!!b", "!", "a!b", True),
        ("%!%%", "!", "50% off", True),
        ("%!%%", "!", "50 off", False),
        ("\\%%", "\\", "%abc", True),
        ("a%%b", "%", "a%b", True),  # the escape character wins over its wildcard role
        ("a!xb", "!", "axb", True),  # escaping an ordinary character keeps it literal
        ("%a%a%a%a%a%a%a%a%a%a%b", None, "a" * 5000, False),  # no regex backtracking
        ("%a_a%", None, "xxaxa", True),
        ("a%a", None, "a", False),
        ("a%a", None, "aa", True),
        ("_%_", None, "ab", True),
        ("_%_", None, "a", False),
        ("%ab%ab%", None, "abab", True),
        ("%ab%ab%", None, "aba", False),
        ("%_b_%", None, "abc", True),
    ],
)
def test_like_patterns(pattern: str, escape: str | None, text: str, expected: bool) -> None:
    assert like_matcher(pattern, escape)(text) is expected
    esc = "" if escape is None else " ESCAPE '" + escape.replace("'", "''") + "'"
    sel = compile_selector("v LIKE '" + pattern.replace("'", "''") + "'" + esc)
    assert sel is not None
    assert sel.matches({"v": text}.get) is expected


def test_blank_selects_all() -> None:
    assert compile_selector(None) is None
    assert compile_selector("") is None
    assert compile_selector("  \t\n ") is None


def test_selector_object() -> None:
    sel = compile_selector("JMSPriority > 4 AND (color = 'red' OR k IS NULL) AND NOT t")
    assert isinstance(sel, Selector)
    assert sel.text == "JMSPriority > 4 AND (color = 'red' OR k IS NULL) AND NOT t"
    assert sel.identifiers == frozenset({"JMSPriority", "color", "k", "t"})
    assert sel.identifiers - JMS_HEADERS == {"color", "k", "t"}
    headers_only = compile_selector("JMSPriority > 4 AND JMSType = 'x'")
    assert headers_only is not None and headers_only.identifiers <= JMS_HEADERS
    const = compile_selector("1 = 1")
    assert const is not None and const.identifiers == frozenset()
    assert const.matches(MSG.get) is True
    assert "JMSPriority" in repr(sel)


def test_getter_called_only_for_needed_names() -> None:
    seen: list[str] = []

    def get(name: str) -> Any:
        seen.append(name)
        return MSG.get(name)

    sel = compile_selector("k = 6 AND s = 'red'")
    assert sel is not None and sel.matches(get) is False
    assert seen == ["k"]  # AND short-circuits on FALSE


def test_long_flat_chains_are_not_deep() -> None:
    # AND/OR chains are n-ary, so hundreds of terms stay within the depth cap.
    text = " OR ".join(f"k = {i}" for i in range(400))
    sel = compile_selector(text, max_length=100_000)
    assert sel is not None and sel.matches(MSG.get) is True
    assert sel.matches({"k": 400}.get) is False


def test_error_is_invalid_value_error() -> None:
    with pytest.raises(SelectorError) as info:
        compile_selector("k >")
    assert isinstance(info.value, InvalidError) and isinstance(info.value, ValueError)
    assert info.value.code == ErrorCode.INVALID


ERRORS: list[tuple[str, str]] = [
    ("k >", 'selector "k >": expected an expression at position 3 (end of input)'),
    ("k > )", "expected an expression at position 4 (')')"),
    ("k # 1", "unexpected character '#' at position 2"),
    ("k != 1", "unexpected character '!' (use <> for not-equal) at position 2"),
    ('k = "a"', "unexpected character '\"' (string literals use single quotes) at position 4"),
    ("k == 1", "expected an expression at position 3 ('=')"),
    ("s = 'abc", "unterminated string literal at position 4"),
    ("s = 'it''s", "unterminated string literal at position 4"),
    ("s LIKE 'a' ESCAPE 'ab'", "ESCAPE needs a one-character string literal at position 18"),
    ("s LIKE 'a' ESCAPE ''", "ESCAPE needs a one-character string literal at position 18"),
    ("s LIKE 'a' ESCAPE 1", "ESCAPE needs a one-character string literal at position 18"),
    ("s LIKE 'ab!' ESCAPE '!'", "LIKE pattern ends with its escape character at position 7"),
    ("s LIKE 5", "LIKE pattern must be a string literal at position 7 (number 5)"),
    ("s LIKE t", "LIKE pattern must be a string literal at position 7 ('t')"),
    ("s LIKE", "LIKE pattern must be a string literal at position 6 (end of input)"),
    ("5 LIKE 'a'", "LIKE needs a string, got a number at position 0"),
    ("s IN ()", "IN needs at least one string literal at position 6 (')')"),
    ("s IN (1, 2)", "IN list takes string literals only at position 6 (number 1)"),
    ("s IN ('a' 'b')", "expected ',' or ')' in IN list at position 10 (string literal)"),
    ("s IN 'a'", "expected '(' after IN at position 5 (string literal)"),
    ("s IN ('a',)", "IN list takes string literals only at position 10 (')')"),
    ("1 IN ('a')", "IN needs a string, got a number at position 0"),
    ("5", "a selector must be a boolean expression, got a number at position 0"),
    ("k + 1", "a selector must be a boolean expression, got a number at position 0"),
    ("'red'", "a selector must be a boolean expression, got a string at position 0"),
    ("(k * 2)", "a selector must be a boolean expression, got a number at position 1"),
    ("NOT 5", "NOT needs a boolean, got a number at position 4"),
    ("5 AND t", "AND needs a boolean, got a number at position 0"),
    ("t OR 'x'", "OR needs a boolean, got a string at position 5"),
    ("'a' + 1 = k", "'+' needs a number, got a string at position 0"),
    ("k * TRUE = 1", "'*' needs a number, got a boolean at position 4"),
    ("-'a' = k", "unary '-' needs a number, got a string at position 1"),
    ("'a' < s", "'<' needs a number, got a string at position 0"),
    ("t >= FALSE", "'>=' needs a number, got a boolean at position 5"),
    ("k BETWEEN 'a' AND 'z'", "BETWEEN needs a number, got a string at position 10"),
    ("'a' BETWEEN 1 AND 2", "BETWEEN needs a number, got a string at position 0"),
    ("1 = 'a'", "cannot compare a number with a string at position 2"),
    ("TRUE <> 1", "cannot compare a boolean with a number at position 5"),
    ("a = b = c", "comparisons cannot be chained; add parentheses at position 6 ('=')"),
    ("k < 1 IS NULL", "comparisons cannot be chained; add parentheses at position 6"),
    ("(k = 1", "expected ')' at position 6 (end of input)"),
    ("k = 1)", "expected an operator or end of input at position 5 (')')"),
    ("k = 1 s = 2", "expected an operator or end of input at position 6 ('s')"),
    ("k IS 5", "expected NULL after IS at position 5 (number 5)"),
    ("k IS NOT", "expected NULL after IS at position 8 (end of input)"),
    ("k NOT = 1", "expected BETWEEN, IN or LIKE after NOT at position 6 ('=')"),
    ("k = NULL", "NULL is only allowed in IS [NOT] NULL at position 4 (keyword NULL)"),
    ("AND = 1", "expected an expression at position 0 (keyword AND)"),
    ("k = 1 AND", "expected an expression at position 9 (end of input)"),
    ("12abc = 1", "malformed number '12a' at position 0"),
    ("k = 1.2.3", "malformed number '1.2.' at position 4"),
    ("k = 0x", "malformed number '0x' at position 4"),
    ("k = 1e", "malformed number '1e' at position 4"),
    ("k=5AND t", "malformed number '5A' at position 2"),
    ("k = 99999999999999999999", "integer literal does not fit a 64-bit long at position 4"),
    ("k = 0x8000000000000000", "hex literal does not fit a 64-bit long at position 4"),
    ("k BETWEEN 1 OR 2", "expected AND in BETWEEN at position 12 (keyword OR)"),
    ("k BETWEEN 1", "expected AND in BETWEEN at position 11 (end of input)"),
    ("()", "expected an expression at position 1 (')')"),
    ("k = ,", "expected an expression at position 4 (',')"),
]


@pytest.mark.parametrize(("selector", "message"), ERRORS)
def test_errors(selector: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        compile_selector(selector)
    text = str(info.value)
    assert text.startswith(f'selector "{selector}": '), text
    assert message in text, text


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("(" * 150 + "t" + ")" * 150, "selector nests deeper than 100 levels"),
        ("NOT " * 150 + "t", "selector nests deeper than 100 levels"),
        ("-" * 150 + "k = 1", "selector nests deeper than 100 levels"),
        ("k" + " + k" * 150 + " = 1", "expression nests deeper than 100 levels"),
        ("k = 1 OR " * 2100 + "t", "more than 4096 tokens"),
    ],
)
def test_hostile_input_is_capped(selector: str, message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        compile_selector(selector, max_length=1_000_000)


def test_nesting_within_cap_works() -> None:
    sel = compile_selector("(" * 60 + "k = 5" + ")" * 60)
    assert sel is not None and sel.matches(MSG.get) is True
    sel = compile_selector("k" + " + 1" * 60 + " = 65")
    assert sel is not None and sel.matches(MSG.get) is True


def test_length_cap() -> None:
    text = "k = 1 OR " * 455 + "k = 5"
    assert len(text) > MAX_SELECTOR_LENGTH
    with pytest.raises(SelectorError, match=rf"exceed max_selector_length \({MAX_SELECTOR_LENGTH}\)"):
        compile_selector(text)
    sel = compile_selector(text, max_length=len(text))
    assert sel is not None and sel.matches(MSG.get) is True
    with pytest.raises(SelectorError, match=r'selector "k = 5": 5 characters exceed max_selector'):
        compile_selector("k = 5", max_length=4)
    # 0 is no limit (max_selector_length = 0).
    sel = compile_selector(text, max_length=0)
    assert sel is not None and sel.matches(MSG.get) is True


def test_long_selector_is_shortened_in_messages() -> None:
    text = "k = 1 AND " * 20 + "k >"
    with pytest.raises(SelectorError) as info:
        compile_selector(text)
    assert '..."' in str(info.value) and f"position {len(text)}" in str(info.value)
