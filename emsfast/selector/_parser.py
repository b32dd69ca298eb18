"""Pratt parser: selector text → type-checked syntax tree (JMS 2.0 §3.8.1.2)."""

from __future__ import annotations

from emsfast.errors import SelectorError
from emsfast.selector._ast import (
    ANY,
    BOOL,
    EQUALITY,
    NUM,
    ORDERING,
    STR,
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
    static_type,
)
from emsfast.selector._lexer import Token, describe, fail, tokenize

# Nesting cap: evaluation recurses once per tree level through nested closures,
# so this bounds the Python stack a hostile selector can demand (limit 1000).
MAX_DEPTH = 100

# Binding powers, loosest first: OR < AND < NOT < comparison < + - < * / < unary.
_OR, _AND, _NOT, _CMP, _ADD, _MUL, _UNARY = 10, 20, 30, 40, 50, 60, 70

_OP_POWER = {
    "=": _CMP, "<>": _CMP, "<": _CMP, ">": _CMP, "<=": _CMP, ">=": _CMP,
    "+": _ADD, "-": _ADD, "*": _MUL, "/": _MUL,
}  # fmt: skip
_KEYWORD_POWER = {
    "OR": _OR, "AND": _AND, "NOT": _CMP, "BETWEEN": _CMP, "IN": _CMP, "LIKE": _CMP, "IS": _CMP,
}  # fmt: skip


def parse(text: str) -> Node:
    """Parse a non-empty selector; the tree is boolean-typed or an identifier."""
    return _Parser(text).parse()


class _Parser:
    def __init__(self, text: str) -> None:
        self._text = text
        self._tokens = tokenize(text)
        self._i = 0
        self._depth = 0

    def parse(self) -> Node:
        node = self._expr(0)
        tok = self._peek()
        if tok.kind != "end":
            raise self._error("expected an operator or end of input", tok)
        have = static_type(node)
        if have not in (BOOL, ANY):
            what = f"a selector must be a boolean expression, got a {have}"
            raise fail(self._text, what, node.pos)
        return node

    # -- token helpers ------------------------------------------------------

    def _peek(self) -> Token:
        return self._tokens[self._i]

    def _next(self) -> Token:
        tok = self._tokens[self._i]
        if tok.kind != "end":
            self._i += 1
        return tok

    def _error(self, what: str, tok: Token) -> SelectorError:
        return fail(self._text, what, tok.pos, describe(tok))

    def _is(self, tok: Token, kind: str, value: str) -> bool:
        return tok.kind == kind and tok.value == value

    def _expect(self, kind: str, value: str, what: str) -> Token:
        tok = self._next()
        if not self._is(tok, kind, value):
            raise self._error(f"expected {what}", tok)
        return tok

    def _need(self, node: Node, want: str, what: str) -> None:
        """Reject operands whose type is known now and wrong (identifiers pass)."""
        have = static_type(node)
        if have != ANY and have != want:
            raise fail(self._text, f"{what} needs a {want}, got a {have}", node.pos)

    def _checked(self, node: Node) -> Node:
        if node.depth > MAX_DEPTH:
            raise fail(self._text, f"expression nests deeper than {MAX_DEPTH} levels", node.pos)
        return node

    # -- grammar ------------------------------------------------------------

    def _expr(self, min_power: int) -> Node:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            tok = self._peek()
            raise fail(self._text, f"selector nests deeper than {MAX_DEPTH} levels", tok.pos)
        left = self._prefix()
        compared = False
        while True:
            tok = self._peek()
            if tok.kind == "op":
                power = _OP_POWER.get(str(tok.value), 0)
            elif tok.kind == "keyword":
                power = _KEYWORD_POWER.get(str(tok.value), 0)
            else:
                power = 0
            if power <= min_power:
                break
            if power == _CMP:
                # SQL comparisons do not associate: "a = b = c" is a mistake.
                if compared:
                    raise self._error("comparisons cannot be chained; add parentheses", tok)
                compared = True
                left = self._comparison(left)
            else:
                self._next()
                right = self._expr(power)
                if tok.kind == "keyword":
                    left = self._logical(str(tok.value), left, right)
                else:
                    self._need(left, NUM, f"{tok.value!r}")
                    self._need(right, NUM, f"{tok.value!r}")
                    left = Binary(str(tok.value), left, right, left.pos)
            self._checked(left)
        self._depth -= 1
        return left

    def _prefix(self) -> Node:
        tok = self._next()
        kind, value = tok.kind, tok.value
        if kind == "number" or kind == "string":
            return Literal(value, tok.pos)
        if kind == "ident":
            return Ident(str(value), tok.pos)
        if kind == "keyword":
            if value in ("TRUE", "FALSE"):
                return Literal(value == "TRUE", tok.pos)
            if value == "NOT":
                operand = self._expr(_NOT)
                self._need(operand, BOOL, "NOT")
                return self._checked(Unary("NOT", operand, tok.pos))
            if value == "NULL":
                raise self._error("NULL is only allowed in IS [NOT] NULL", tok)
        if kind == "op":
            if value in ("-", "+"):
                operand = self._expr(_UNARY)
                self._need(operand, NUM, f"unary {value!r}")
                if isinstance(operand, Literal):  # fold, so "-5" stays a literal
                    v = operand.value
                    assert isinstance(v, int | float)
                    return Literal(-v if value == "-" else v, tok.pos)
                return self._checked(Unary(str(value), operand, tok.pos))
            if value == "(":
                inner = self._expr(0)
                self._expect("op", ")", "')'")
                return inner
        raise self._error("expected an expression", tok)

    def _logical(self, op: str, left: Node, right: Node) -> Node:
        self._need(left, BOOL, op)
        self._need(right, BOOL, op)
        items: list[Node] = []
        for side in (left, right):
            if isinstance(side, Logical) and side.op == op:
                items.extend(side.items)  # AND/OR associate; flat keeps depth low
            else:
                items.append(side)
        return Logical(op, tuple(items), left.pos)

    def _comparison(self, left: Node) -> Node:
        tok = self._next()
        op = str(tok.value)
        if tok.kind == "op":
            right = self._expr(_CMP)
            if op in ORDERING:
                self._need(left, NUM, f"{op!r}")
                self._need(right, NUM, f"{op!r}")
            else:
                assert op in EQUALITY
                lt, rt = static_type(left), static_type(right)
                if lt != ANY and rt != ANY and lt != rt:
                    raise fail(self._text, f"cannot compare a {lt} with a {rt}", tok.pos)
            return Binary(op, left, right, left.pos)
        if op == "IS":
            negated = self._is(self._peek(), "keyword", "NOT")
            if negated:
                self._next()
            self._expect("keyword", "NULL", "NULL after IS")
            return IsNull(left, negated, left.pos)
        negated = op == "NOT"
        if negated:
            tok = self._next()
            op = str(tok.value)
            if tok.kind != "keyword" or op not in ("BETWEEN", "IN", "LIKE"):
                raise self._error("expected BETWEEN, IN or LIKE after NOT", tok)
        if op == "BETWEEN":
            self._need(left, NUM, "BETWEEN")
            low = self._expr(_CMP)
            self._expect("keyword", "AND", "AND in BETWEEN")
            high = self._expr(_CMP)
            self._need(low, NUM, "BETWEEN")
            self._need(high, NUM, "BETWEEN")
            return Between(left, low, high, negated, left.pos)
        if op == "IN":
            self._need(left, STR, "IN")
            return In(left, self._in_list(), negated, left.pos)
        self._need(left, STR, "LIKE")
        pattern = self._next()
        if pattern.kind != "string":
            raise self._error("LIKE pattern must be a string literal", pattern)
        escape: str | None = None
        if self._is(self._peek(), "keyword", "ESCAPE"):
            self._next()
            etok = self._next()
            if etok.kind != "string" or len(str(etok.value)) != 1:
                raise self._error("ESCAPE needs a one-character string literal", etok)
            escape = str(etok.value)
            if _dangling_escape(str(pattern.value), escape):
                raise self._error("LIKE pattern ends with its escape character", pattern)
        return Like(left, str(pattern.value), escape, negated, left.pos)

    def _in_list(self) -> tuple[str, ...]:
        self._expect("op", "(", "'(' after IN")
        if self._is(self._peek(), "op", ")"):
            raise self._error("IN needs at least one string literal", self._peek())
        values: list[str] = []
        while True:
            tok = self._next()
            if tok.kind != "string":
                raise self._error("IN list takes string literals only", tok)
            values.append(str(tok.value))
            sep = self._next()
            if self._is(sep, "op", ")"):
                return tuple(values)
            if not self._is(sep, "op", ","):
                raise self._error("expected ',' or ')' in IN list", sep)


def _dangling_escape(pattern: str, escape: str) -> bool:
    i = 0
    while i < len(pattern):
        if pattern[i] == escape:
            if i + 1 == len(pattern):
                return True
            i += 1
        i += 1
    return False
