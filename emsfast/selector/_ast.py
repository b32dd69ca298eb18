"""Selector syntax tree, its static types and a printer that parses back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

# Static types: what the parser can know without a message.  "any" is an
# identifier, whose value type only the message decides.
BOOL, NUM, STR, ANY = "boolean", "number", "string", "any"

ARITHMETIC = frozenset({"+", "-", "*", "/"})
ORDERING = frozenset({"<", ">", "<=", ">="})
EQUALITY = frozenset({"=", "<>"})

Value: TypeAlias = bool | int | float | str


def _depth(*children: Node) -> int:
    return 1 + max((c.depth for c in children), default=0)


@dataclass(eq=False, slots=True)
class Literal:
    value: Value
    pos: int = 0
    depth: int = field(init=False, default=1, repr=False)


@dataclass(eq=False, slots=True)
class Ident:
    name: str
    pos: int = 0
    depth: int = field(init=False, default=1, repr=False)


@dataclass(eq=False, slots=True)
class Unary:
    op: str  # "-", "+" or "NOT"
    operand: Node
    pos: int = 0
    depth: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.depth = _depth(self.operand)


@dataclass(eq=False, slots=True)
class Binary:
    op: str  # arithmetic or comparison operator
    left: Node
    right: Node
    pos: int = 0
    depth: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.depth = _depth(self.left, self.right)


@dataclass(eq=False, slots=True)
class Logical:
    """AND / OR kept n-ary so long chains stay shallow (no deep recursion)."""

    op: str  # "AND" or "OR"
    items: tuple[Node, ...]
    pos: int = 0
    depth: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.depth = _depth(*self.items)


@dataclass(eq=False, slots=True)
class Between:
    subject: Node
    low: Node
    high: Node
    negated: bool = False
    pos: int = 0
    depth: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.depth = _depth(self.subject, self.low, self.high)


@dataclass(eq=False, slots=True)
class In:
    subject: Node
    values: tuple[str, ...]
    negated: bool = False
    pos: int = 0
    depth: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.depth = _depth(self.subject)


@dataclass(eq=False, slots=True)
class Like:
    subject: Node
    pattern: str
    escape: str | None = None
    negated: bool = False
    pos: int = 0
    depth: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.depth = _depth(self.subject)


@dataclass(eq=False, slots=True)
class IsNull:
    subject: Node
    negated: bool = False
    pos: int = 0
    depth: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.depth = _depth(self.subject)


Node: TypeAlias = Literal | Ident | Unary | Binary | Logical | Between | In | Like | IsNull


def static_type(node: Node) -> str:
    if isinstance(node, Literal):
        v = node.value
        return BOOL if isinstance(v, bool) else STR if isinstance(v, str) else NUM
    if isinstance(node, Ident):
        return ANY
    if isinstance(node, Binary) and node.op in ARITHMETIC:
        return NUM
    if isinstance(node, Unary) and node.op != "NOT":
        return NUM
    return BOOL


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Logical):
        return node.items
    if isinstance(node, Between):
        return (node.subject, node.low, node.high)
    if isinstance(node, In | Like | IsNull):
        return (node.subject,)
    return ()


def identifiers(node: Node) -> frozenset[str]:
    names: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Ident):
            names.add(n.name)
        stack.extend(children(n))
    return frozenset(names)


def _string(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _literal(v: Value) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, float):
        # repr gives "1e-05"/"1e+16"/"2.5"; make it lexically approximate.
        r = "1e999" if abs(v) == float("inf") else repr(abs(v))  # NaN has no literal
        if "." not in r and "e" not in r:
            r += ".0"
        return f"(-{r})" if v < 0 or (v == 0 and str(v).startswith("-")) else r
    return f"(-{-v})" if v < 0 else str(v)


def unparse(node: Node) -> str:
    """Selector text for ``node``, fully parenthesised so it parses back to it."""
    if isinstance(node, Literal):
        return _literal(node.value)
    if isinstance(node, Ident):
        return node.name
    if isinstance(node, Unary):
        sep = " " if node.op == "NOT" else ""
        return f"({node.op}{sep}{unparse(node.operand)})"
    if isinstance(node, Binary):
        return f"({unparse(node.left)} {node.op} {unparse(node.right)})"
    if isinstance(node, Logical):
        return "(" + f" {node.op} ".join(unparse(i) for i in node.items) + ")"
    neg = "NOT " if getattr(node, "negated", False) else ""
    if isinstance(node, Between):
        s, lo, hi = unparse(node.subject), unparse(node.low), unparse(node.high)
        return f"({s} {neg}BETWEEN {lo} AND {hi})"
    if isinstance(node, In):
        items = ", ".join(_string(v) for v in node.values)
        return f"({unparse(node.subject)} {neg}IN ({items}))"
    if isinstance(node, Like):
        esc = "" if node.escape is None else f" ESCAPE {_string(node.escape)}"
        return f"({unparse(node.subject)} {neg}LIKE {_string(node.pattern)}{esc})"
    return f"({unparse(node.subject)} IS {'NOT ' if node.negated else ''}NULL)"
