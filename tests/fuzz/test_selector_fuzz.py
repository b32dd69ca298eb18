"""Property tests for selectors.

1. Any text: compile_selector raises nothing but SelectorError, and a compiled
   selector's ``matches`` returns a bool for any message.
2. Random well-typed trees, printed and parsed back, evaluate like a plain
   recursive reference interpreter written here (three values, via NOT).
"""

from __future__ import annotations

import operator
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from emsfast.errors import SelectorError
from emsfast.selector import compile_selector
from emsfast.selector._ast import (
    Between,
    Binary,
    Ident,
    In,
    IsNull,
    Like,
    Literal,
    Logical,
    Node,
    Unary,
    unparse,
)

EXAMPLES = settings(max_examples=300, deadline=None)

NAMES = ["a", "b", "s", "t", "n", "JMSPriority"]
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet="ab%_!'\n", max_size=4),
)
messages = st.dictionaries(st.sampled_from(NAMES), values)

# -- 1. arbitrary text --------------------------------------------------------

SOUP = [
    "a", "s", "JMSPriority", "AND", "or", "NOT", "BETWEEN", "IN", "LIKE", "ESCAPE", "IS",
    "NULL", "TRUE", "false", "=", "<>", "<", ">", "<=", ">=", "+", "-", "*", "/", "(", ")",
    ",", "'x'", "''", "'%_'", "'!'", "1", "0", "2.5", "1e3", "7F", "5L", "0x1f", ".5",
    "9223372036854775808", "'", "!", "#", "\u00e9", "1.2.3", "0x",
]  # fmt: skip

texts = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="ab()=<>+-*/'%_!., 0123456789eEL", max_size=60),
    st.lists(st.sampled_from(SOUP), max_size=25).map(" ".join),
    st.lists(st.sampled_from(SOUP), max_size=25).map("".join),
)


@EXAMPLES
@given(texts, messages)
def test_any_text_raises_only_selector_error(text: str, msg: dict[str, Any]) -> None:
    try:
        sel = compile_selector(text)
    except SelectorError as exc:
        assert str(exc).startswith("selector ")
        return
    if sel is not None:
        assert type(sel.matches(msg.get)) is bool


# -- 2. well-typed trees ------------------------------------------------------

idents = st.sampled_from(NAMES).map(Ident)
strings = st.text(alphabet=st.characters(codec="utf-8"), max_size=4)
leaf_num = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(Literal),
    st.integers(-3, 3).map(Literal),
    st.floats(allow_nan=False).map(Literal),
    idents,
)
leaf_str = st.one_of(strings.map(Literal), idents)


def num_exprs() -> st.SearchStrategy[Node]:
    return st.recursive(
        leaf_num,
        lambda sub: st.one_of(
            st.builds(Unary, st.sampled_from(["-", "+"]), sub),
            st.builds(Binary, st.sampled_from(["+", "-", "*", "/"]), sub, sub),
        ),
        max_leaves=4,
    )


def _pattern(draw: st.DrawFn) -> Like:
    escape = draw(st.sampled_from([None, "!", "%"]))
    pattern = draw(st.text(alphabet="ab%_!\n", max_size=6))
    if escape is not None:
        i, n = 0, len(pattern)
        while i < n:  # a trailing lone escape is a SelectorError; pad it
            i += 2 if pattern[i] == escape else 1
        if i == n + 1:
            pattern += "a"
    return Like(draw(leaf_str), pattern, escape, draw(st.booleans()))


like_exprs = st.composite(_pattern)()

cmp_ops = st.sampled_from(["=", "<>", "<", ">", "<=", ">="])
eq_ops = st.sampled_from(["=", "<>"])
bool_leaves = st.one_of(
    st.booleans().map(Literal),
    idents,
    st.builds(Binary, cmp_ops, num_exprs(), num_exprs()),
    st.builds(Binary, eq_ops, leaf_str, leaf_str),
    st.builds(Between, num_exprs(), num_exprs(), num_exprs(), st.booleans()),
    st.builds(In, leaf_str, st.lists(strings, min_size=1, max_size=3).map(tuple), st.booleans()),
    like_exprs,
    st.builds(IsNull, st.one_of(num_exprs(), leaf_str), st.booleans()),
)
bool_exprs = st.recursive(
    bool_leaves,
    lambda sub: st.one_of(
        st.builds(Unary, st.just("NOT"), sub),
        st.builds(
            Logical,
            st.sampled_from(["AND", "OR"]),
            st.lists(sub, min_size=2, max_size=3).map(tuple),
        ),
        st.builds(Binary, eq_ops, sub, st.one_of(sub, idents)),
    ),
    max_leaves=8,
)

_NUMBER = (int, float)
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
_CMP = {
    "=": operator.eq, "<>": operator.ne, "<": operator.lt,
    ">": operator.gt, "<=": operator.le, ">=": operator.ge,
}  # fmt: skip


def _num(v: Any) -> bool:
    return type(v) in _NUMBER


def _as_bool(v: Any) -> bool | None:
    return v if type(v) is bool else None


def _and(rs: list[bool | None]) -> bool | None:
    return False if False in rs else None if None in rs else True


def _compare(op: str, x: Any, y: Any) -> bool | None:
    if _num(x) and _num(y):
        return bool(_CMP[op](x, y))
    if op in ("=", "<>") and type(x) is type(y) and type(x) in (str, bool):
        return bool(_CMP[op](x, y))
    return None


def _like_regex(node: Like) -> re.Pattern[str]:
    out, i, p = [], 0, node.pattern
    while i < len(p):
        if p[i] == node.escape:
            i += 1
            out.append(re.escape(p[i]))
        else:
            out.append(".*" if p[i] == "%" else "." if p[i] == "_" else re.escape(p[i]))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def reference(node: Node, msg: dict[str, Any]) -> Any:
    """JMS §3.8 semantics, written for clarity rather than speed."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Ident):
        return msg.get(node.name)
    if isinstance(node, Unary):
        v = reference(node.operand, msg)
        if node.op == "NOT":
            b = _as_bool(v)
            return None if b is None else not b
        return (-v if node.op == "-" else v) if _num(v) else None
    if isinstance(node, Binary):
        x, y = reference(node.left, msg), reference(node.right, msg)
        if node.op in _ARITH:
            if not (_num(x) and _num(y)):
                return None
            try:
                return _ARITH[node.op](x, y)
            except ArithmeticError:
                return None
        return _compare(node.op, x, y)
    if isinstance(node, Logical):
        rs = [_as_bool(reference(i, msg)) for i in node.items]
        if node.op == "AND":
            return _and(rs)
        return True if True in rs else None if None in rs else False
    if isinstance(node, Between):
        v, lo, hi = (reference(n, msg) for n in (node.subject, node.low, node.high))
        r = _and([_compare("<=", lo, v), _compare("<=", v, hi)])
    elif isinstance(node, In):
        v = reference(node.subject, msg)
        r = v in node.values if type(v) is str else None
    elif isinstance(node, Like):
        v = reference(node.subject, msg)
        r = _like_regex(node).fullmatch(v) is not None if type(v) is str else None
    else:
        assert isinstance(node, IsNull)
        return (reference(node.subject, msg) is None) != node.negated
    return None if r is None else r != node.negated


@EXAMPLES
@given(bool_exprs, messages)
def test_printed_tree_parses_back_and_evaluates_like_reference(
    tree: Node, msg: dict[str, Any]
) -> None:
    text = unparse(tree)
    sel = compile_selector(text, max_length=100_000)
    neg = compile_selector(f"NOT {text}", max_length=100_000)
    assert sel is not None and neg is not None
    expected = _as_bool(reference(tree, msg))
    got = msg.get
    yes, no = sel.matches(got), neg.matches(got)
    assert (yes, no) == (expected is True, expected is False), text
    assert sel.identifiers <= set(NAMES)
