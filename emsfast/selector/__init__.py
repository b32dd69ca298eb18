"""JMS message selectors (JMS 2.0 §3.8): parse once per consumer, test per message.

The server compiles a consumer's selector when it subscribes and calls
``Selector.matches`` for each message; the client compiles too, so a bad
selector fails at ``createConsumer`` rather than on the server.  Imports only
the stdlib, ``emsfast.consts`` and ``emsfast.errors`` so it works without the
native core.
"""

from __future__ import annotations

from collections.abc import Callable

from emsfast.consts import MAX_SELECTOR_LENGTH
from emsfast.errors import SelectorError
from emsfast.selector._ast import Node, identifiers
from emsfast.selector._compiler import Getter, compile_tree
from emsfast.selector._lexer import quote
from emsfast.selector._parser import MAX_DEPTH, parse

__all__ = [
    "JMS_HEADERS",
    "MAX_DEPTH",
    "MAX_SELECTOR_LENGTH",
    "Selector",
    "SelectorError",
    "compile_selector",
]

# Header fields a selector may name; the getter maps them (JMSDeliveryMode as
# 'PERSISTENT' / 'NON_PERSISTENT').  If ``identifiers`` holds only these the
# server can skip decoding the property table.
JMS_HEADERS = frozenset(
    {
        "JMSDeliveryMode",
        "JMSPriority",
        "JMSMessageID",
        "JMSTimestamp",
        "JMSCorrelationID",
        "JMSType",
        "JMSRedelivered",
        "JMSExpiration",
    }
)


class Selector:
    """A compiled selector.

    ``matches(get)`` is True only when the whole expression is TRUE for the
    message; ``get(name)`` returns the header or property value (None, bool,
    int, float or str) or None when absent.  ``matches`` is the compiled
    closure itself, stored on the instance so the per-message call has no
    method-binding layer.
    """

    __slots__ = ("text", "identifiers", "matches", "tree")

    text: str
    identifiers: frozenset[str]
    matches: Callable[[Getter], bool]
    tree: Node

    def __init__(self, text: str, tree: Node) -> None:
        self.text = text
        self.tree = tree
        self.identifiers = identifiers(tree)
        self.matches = compile_tree(tree)

    def __repr__(self) -> str:
        return f"Selector({self.text!r})"


def compile_selector(text: str | None, max_length: int = MAX_SELECTOR_LENGTH) -> Selector | None:
    """Compile ``text``; None, empty or blank selects every message (None).

    ``max_length`` is the server's ``max_selector_length`` (0 = no limit).
    Raises SelectorError naming the problem and its position.
    """
    if text is None or not text.strip(" \t\f\r\n"):  # JMS whitespace only
        return None
    if max_length and len(text) > max_length:
        raise SelectorError(
            f"selector {quote(text)}: {len(text)} characters exceed "
            f"max_selector_length ({max_length})"
        )
    return Selector(text, parse(text))
