"""Syntax tree → nested closures, the form evaluated per message.

Three-valued logic: a condition closure returns True, False or ``unk``.  In
"tri" mode ``unk`` is None (SQL UNKNOWN) and the result may feed NOT, whose
answer depends on it.  In "truth" mode ``unk`` is False: only "is it TRUE?"
matters, which holds at the top and under AND/OR outside any NOT, and lets
AND/OR short-circuit on plain Python booleans.

Values are None (NULL), bool, int, float or str.  Numbers are exactly int and
float (bool is an int subclass but a distinct JMS type); anything else the
getter returns compares as a type mismatch, i.e. UNKNOWN.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from emsfast.selector._ast import (
    ARITHMETIC,
    ORDERING,
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
    children,
)

Getter = Callable[[str], Any]
Fn = Callable[[Getter], Any]

_NUM = frozenset({int, float})
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "=": operator.eq, "<>": operator.ne, "<": operator.lt, ">": operator.gt,
    "<=": operator.le, ">=": operator.ge,
}  # fmt: skip
_FLIP = {"=": "=", "<>": "<>", "<": ">", ">": "<", "<=": ">=", ">=": "<="}


def _never_called(name: str) -> Any:
    raise AssertionError("constant subtree read an identifier")


def _const(v: Any) -> Fn:
    return lambda get: v


def compile_tree(node: Node) -> Callable[[Getter], bool]:
    """The top-level test: True iff the selector is TRUE for the message."""
    fn: Callable[[Getter], bool] = _Compiler(node).cond(node, False)
    return fn


class _Compiler:
    def __init__(self, root: Node) -> None:
        self._constant: dict[int, bool] = {}
        self._mark(root)

    def _mark(self, node: Node) -> bool:
        """Record which subtrees read no identifier, so they fold once."""
        const = not isinstance(node, Ident)
        for c in children(node):
            const = self._mark(c) and const
        self._constant[id(node)] = const
        return const

    def _fold(self, node: Node) -> tuple[bool, Any]:
        if isinstance(node, Literal):
            return True, node.value
        if self._constant[id(node)]:
            return True, self._raw_value(node)(_never_called)
        return False, None

    # -- values ---------------------------------------------------------------

    def value(self, node: Node) -> Fn:
        """Closure returning the node's value, None for NULL."""
        if isinstance(node, Ident):
            name = node.name
            return lambda get: get(name)
        folded, v = self._fold(node)
        if folded:
            return _const(v)
        return self._raw_value(node)

    def _raw_value(self, node: Node) -> Fn:
        if isinstance(node, Unary) and node.op != "NOT":
            return _negate(self.value(node.operand), node.op == "-")
        if isinstance(node, Binary) and node.op in ARITHMETIC:
            return _arith(_OPS[node.op], self.value(node.left), self.value(node.right))
        return self.cond(node, None)  # a boolean used as a value: (a > 1) = TRUE

    # -- conditions -----------------------------------------------------------

    def cond(self, node: Node, unk: bool | None) -> Fn:
        """Closure returning True, False, or ``unk`` for UNKNOWN."""
        if not isinstance(node, Literal | Ident) and self._constant[id(node)]:
            r = self._build(node, None)(_never_called)
            return _const(unk if r is None else r)
        return self._build(node, unk)

    def _build(self, node: Node, unk: bool | None) -> Fn:
        if isinstance(node, Literal):
            v = node.value
            return _const(v if isinstance(v, bool) else unk)
        if isinstance(node, Ident):
            return _bool_ident(node.name, unk)
        if isinstance(node, Logical):
            return self._logical(node, unk)
        if isinstance(node, Unary):  # NOT: its operand needs full three values
            inner = self.cond(node.operand, None)
            if unk is None:
                return lambda get: None if (r := inner(get)) is None else not r
            return lambda get: inner(get) is False
        if isinstance(node, Binary):
            return self._compare(node, unk)
        if isinstance(node, IsNull):
            return _is_null(node, self.value(node.subject))
        if isinstance(node, Between):
            return self._between(node, unk)
        if isinstance(node, In):
            return _member(node, self.value(node.subject), unk)
        assert isinstance(node, Like)
        return _like(node, self.value(node.subject), unk)

    def _logical(self, node: Logical, unk: bool | None) -> Fn:
        fns = tuple(self.cond(i, unk) for i in node.items)
        stop = node.op == "OR"  # the value that decides: TRUE for OR, FALSE for AND
        if unk is False:
            if len(fns) == 2:
                a, b = fns
                if stop:
                    return lambda get: a(get) or b(get)
                return lambda get: a(get) and b(get)

            def truth(get: Getter) -> Any:
                for f in fns:
                    if f(get) is stop:
                        return stop
                return not stop

            return truth

        def tri(get: Getter) -> Any:
            result: bool | None = not stop
            for f in fns:
                r = f(get)
                if r is stop:
                    return stop
                if r is None:
                    result = None
            return result

        return tri

    def _compare(self, node: Binary, unk: bool | None) -> Fn:
        op, left, right = node.op, node.left, node.right
        if isinstance(left, Ident):
            folded, c = self._fold(right)
            if folded:
                return _ident_vs_const(left.name, op, c, unk)
        if isinstance(right, Ident):
            folded, c = self._fold(left)
            if folded:
                return _ident_vs_const(right.name, _FLIP[op], c, unk)
        return _generic_compare(_OPS[op], op in ORDERING, self.value(left), self.value(right), unk)

    def _between(self, node: Between, unk: bool | None) -> Fn:
        sub, neg = self.value(node.subject), node.negated
        lo_const, lo = self._fold(node.low)
        hi_const, hi = self._fold(node.high)
        if lo_const and hi_const and type(lo) in _NUM and type(hi) in _NUM:
            if neg:
                return lambda get: not lo <= v <= hi if type(v := sub(get)) in _NUM else unk
            return lambda get: lo <= v <= hi if type(v := sub(get)) in _NUM else unk
        low, high = self.value(node.low), self.value(node.high)

        def between(get: Getter) -> Any:
            v = sub(get)
            if type(v) not in _NUM:
                return unk  # both halves compare NULL or a mismatch: UNKNOWN
            a, b = low(get), high(get)
            r1 = a <= v if type(a) in _NUM else None
            r2 = v <= b if type(b) in _NUM else None
            if r1 is False or r2 is False:  # SQL: lo <= v AND v <= hi
                return neg
            if r1 is None or r2 is None:
                return unk
            return not neg

        return between


def _arith(fn: Callable[[Any, Any], Any], left: Fn, right: Fn) -> Fn:
    def arith(get: Getter) -> Any:
        x = left(get)
        if type(x) not in _NUM:
            return None
        y = right(get)
        if type(y) not in _NUM:
            return None
        try:
            return fn(x, y)
        except ArithmeticError:  # x / 0, int too large for float
            return None

    return arith


def _negate(operand: Fn, minus: bool) -> Fn:
    if minus:
        return lambda get: -x if type(x := operand(get)) in _NUM else None
    return lambda get: x if type(x := operand(get)) in _NUM else None


def _bool_ident(name: str, unk: bool | None) -> Fn:
    if unk is False:
        return lambda get: get(name) is True
    return lambda get: v if type(v := get(name)) is bool else None


def _ident_vs_const(name: str, op: str, c: Any, unk: bool | None) -> Fn:
    """The hot shape, ``prop OP literal``: one getter call, one type test."""
    t = type(c)
    if t in _NUM:
        if op == "=":
            return lambda get: v == c if type(v := get(name)) in _NUM else unk
        if op == "<>":
            return lambda get: v != c if type(v := get(name)) in _NUM else unk
        if op == "<":
            return lambda get: v < c if type(v := get(name)) in _NUM else unk
        if op == ">":
            return lambda get: v > c if type(v := get(name)) in _NUM else unk
        if op == "<=":
            return lambda get: v <= c if type(v := get(name)) in _NUM else unk
        return lambda get: v >= c if type(v := get(name)) in _NUM else unk
    if t is str or t is bool:
        if op == "=":
            return lambda get: v == c if type(v := get(name)) is t else unk
        return lambda get: v != c if type(v := get(name)) is t else unk
    return _const(unk)  # c is NULL (a folded 1/0): every comparison is UNKNOWN


def _generic_compare(
    fn: Callable[[Any, Any], Any], ordering: bool, left: Fn, right: Fn, unk: bool | None
) -> Fn:
    def compare(get: Getter) -> Any:
        x, y = left(get), right(get)
        tx, ty = type(x), type(y)
        if tx in _NUM and ty in _NUM:
            return fn(x, y)
        if not ordering and tx is ty and (tx is str or tx is bool):
            return fn(x, y)
        return unk  # NULL or unlike types (JMS: only like types compare)

    return compare


def _is_null(node: IsNull, sub: Fn) -> Fn:
    if isinstance(node.subject, Ident):
        name = node.subject.name
        if node.negated:
            return lambda get: get(name) is not None
        return lambda get: get(name) is None
    if node.negated:
        return lambda get: sub(get) is not None
    return lambda get: sub(get) is None


def _member(node: In, sub: Fn, unk: bool | None) -> Fn:
    values, neg = frozenset(node.values), node.negated
    if isinstance(node.subject, Ident):
        name = node.subject.name
        if neg:
            return lambda get: v not in values if type(v := get(name)) is str else unk
        return lambda get: v in values if type(v := get(name)) is str else unk
    return lambda get: (v in values) != neg if type(v := sub(get)) is str else unk


def _like(node: Like, sub: Fn, unk: bool | None) -> Fn:
    test, neg = like_matcher(node.pattern, node.escape), node.negated
    if isinstance(node.subject, Ident):
        name = node.subject.name
        if neg:
            return lambda get: not test(v) if type(v := get(name)) is str else unk
        return lambda get: test(v) if type(v := get(name)) is str else unk
    return lambda get: test(v) != neg if type(v := sub(get)) is str else unk


# -- LIKE -------------------------------------------------------------------

_Segment = tuple[str | None, re.Pattern[str] | None, int]  # literal, regex, length


def _segment(chars: list[str | None]) -> _Segment:
    """A %-free run; None stands for '_' (any one character)."""
    if None not in chars:
        return "".join(c for c in chars if c is not None), None, len(chars)
    src = "".join("." if c is None else re.escape(c) for c in chars)
    return None, re.compile(src, re.DOTALL), len(chars)


def like_matcher(pattern: str, escape: str | None) -> Callable[[str], bool]:
    """Match without backtracking regexes: ``%`` splits the pattern into
    fixed-length segments placed leftmost in turn, so hostile patterns such
    as '%a%a%a%a%b' stay linear per segment instead of polynomial."""
    segments: list[_Segment] = []
    run: list[str | None] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == escape and i + 1 < len(pattern):  # escapes %, _, itself, or any char
            i += 1
            run.append(pattern[i])
        elif ch == "%":
            segments.append(_segment(run))
            run = []
        else:
            run.append(None if ch == "_" else ch)
        i += 1
    segments.append(_segment(run))

    first_lit, first_rx, first_len = segments[0]
    if len(segments) == 1:
        if first_rx is None:
            lit = first_lit
            return lambda s: s == lit
        rx = first_rx
        return lambda s: rx.fullmatch(s) is not None
    last_lit, last_rx, last_len = segments[-1]
    middle = [s for s in segments[1:-1] if s[2]]
    if first_rx is None and last_rx is None:
        head, tail = first_lit or "", last_lit or ""
        if not middle and not tail:
            return lambda s: s.startswith(head)
        if not middle and not head:
            return lambda s: s.endswith(tail)
        if not head and not tail and len(middle) == 1 and middle[0][0] is not None:
            inner = middle[0][0]
            return lambda s: inner in s
    fixed = sum(seg[2] for seg in segments)

    def match(s: str) -> bool:
        n = len(s)
        if n < fixed:
            return False
        end = n - last_len
        if first_rx is not None:
            if first_rx.match(s) is None:
                return False
        elif first_lit and not s.startswith(first_lit):
            return False
        if last_rx is not None:
            if last_rx.match(s, end) is None:
                return False
        elif last_lit and not s.endswith(last_lit):
            return False
        pos = first_len
        for lit, rx, length in middle:
            if rx is None:
                assert lit is not None
                i = s.find(lit, pos, end)
                if i < 0:
                    return False
                pos = i + length
            else:
                m = rx.search(s, pos, end)
                if m is None:
                    return False
                pos = m.end()
        return True

    return match
