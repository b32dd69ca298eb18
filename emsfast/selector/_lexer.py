"""Tokenizer for JMS message selectors (JMS 2.0 §3.8.1.1 lexical rules)."""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

from emsfast.errors import SelectorError

# JMS reserves these as keywords, matched case-insensitively (§3.8.1.1).
KEYWORDS = frozenset(
    {"AND", "OR", "NOT", "BETWEEN", "IN", "LIKE", "ESCAPE", "IS", "NULL", "TRUE", "FALSE"}
)

# Every token is at least one character, so this bounds the work a raised
# max_length could let through; the default length cap hits first.
MAX_TOKENS = 4096

# Exact numerics must fit a Java long; one past MAX to allow "-9223372036854775808".
_LONG_MAX = 2**63 - 1

# Java whitespace: space, tab, form feed, line terminators.
_WHITESPACE = frozenset(" \t\f\r\n")

_OPERATORS = ("<>", "<=", ">=", "=", "<", ">", "+", "-", "*", "/", "(", ")", ",")

_HEX = re.compile(r"0[xX]([0-9a-fA-F]+)([lL]?)")
_APPROX = re.compile(
    r"(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[fFdD]?"
    r"|[0-9]+[eE][+-]?[0-9]+[fFdD]?"
    r"|[0-9]+[fFdD]"
)
_EXACT = re.compile(r"([0-9]+)([lL]?)")


class Token(NamedTuple):
    kind: str  # "ident" | "keyword" | "string" | "number" | "op" | "end"
    value: str | int | float  # keyword text is upper-cased
    pos: int  # 0-based character offset into the selector text


def quote(text: str) -> str:
    """The selector as error messages show it; long ones are cut."""
    return '"' + (text if len(text) <= 100 else text[:97] + "...") + '"'


def fail(text: str, what: str, pos: int, found: str | None = None) -> SelectorError:
    tail = f" ({found})" if found else ""
    return SelectorError(f"selector {quote(text)}: {what} at position {pos}{tail}")


def describe(tok: Token) -> str:
    """How a token is named in 'found ...' error tails."""
    if tok.kind == "end":
        return "end of input"
    if tok.kind == "string":
        return "string literal"
    if tok.kind == "number":
        return f"number {tok.value!r}"
    if tok.kind == "keyword":
        return f"keyword {tok.value}"
    return f"{tok.value!r}"


def _ident_start(ch: str) -> bool:
    # Java Character.isJavaIdentifierStart: letters, '$', '_', currency, connectors.
    return ch.isalpha() or ch in "$_" or unicodedata.category(ch) in ("Sc", "Pc", "Nl")


def _ident_part(ch: str) -> bool:
    return _ident_start(ch) or ch.isdigit() or unicodedata.category(ch) in ("Nd", "Mn", "Mc", "Cf")


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens ending with an "end" token; raise SelectorError."""
    tokens: list[Token] = []
    n = len(text)
    i = 0
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if len(tokens) >= MAX_TOKENS:
            raise fail(text, f"more than {MAX_TOKENS} tokens", i)
        if i >= n:
            tokens.append(Token("end", "", n))
            return tokens
        ch = text[i]
        if ch == "'":
            i = _string(text, i, tokens)
        elif ch.isdigit() and ch.isascii() or (ch == "." and text[i + 1 : i + 2].isdigit()):
            i = _number(text, i, tokens)
        elif _ident_start(ch):
            j = i + 1
            while j < n and _ident_part(text[j]):
                j += 1
            word = text[i:j]
            if word.upper() in KEYWORDS:
                tokens.append(Token("keyword", word.upper(), i))
            else:
                tokens.append(Token("ident", word, i))
            i = j
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    tokens.append(Token("op", op, i))
                    i += len(op)
                    break
            else:
                hint = " (use <> for not-equal)" if text.startswith("!=", i) else ""
                if ch == '"':
                    hint = " (string literals use single quotes)"
                raise fail(text, f"unexpected character {ch!r}{hint}", i)


def _string(text: str, start: int, tokens: list[Token]) -> int:
    parts: list[str] = []
    i = start + 1
    while True:
        j = text.find("'", i)
        if j < 0:
            raise fail(text, "unterminated string literal", start)
        parts.append(text[i:j])
        if text.startswith("''", j):  # doubled quote is a literal quote
            parts.append("'")
            i = j + 2
            continue
        tokens.append(Token("string", "".join(parts), start))
        return j + 1


def _number(text: str, start: int, tokens: list[Token]) -> int:
    value: int | float
    m = _HEX.match(text, start)
    if m:
        value = int(m.group(1), 16)
        if value > _LONG_MAX:
            raise fail(text, "hex literal does not fit a 64-bit long", start)
    else:
        m = _APPROX.match(text, start)
        if m:
            lit = m.group()
            value = float(lit[:-1] if lit[-1] in "fFdD" else lit)
        else:
            m = _EXACT.match(text, start)
            assert m is not None  # caller saw a digit
            digits = m.group(1).lstrip("0") or "0"
            if len(digits) > 19 or int(digits) > _LONG_MAX + 1:
                raise fail(text, "integer literal does not fit a 64-bit long", start)
            value = int(digits)
    end = m.end()
    # "12abc", "1.2.3", "0x" must not silently split into two tokens.
    if end < len(text) and (_ident_part(text[end]) or text[end] == "."):
        raise fail(text, f"malformed number {text[start : end + 1]!r}", start)
    tokens.append(Token("number", value, start))
    return end
