"""emsfast: a TIBCO EMS-compatible message broker and its client library.

``import emsfast`` gives the asyncio client (``emsfast.connect``, ``emsfast.Queue``,
``emsfast.TextMessage``, ...) and ``emsfast.blocking`` its threaded facade. Both load
on first use, so the server importing ``emsfast.errors`` does not pull in the client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from emsfast._version import __version__

if TYPE_CHECKING:
    from emsfast import blocking
    from emsfast.client import (
        BytesMessage,
        Connection,
        Consumer,
        Destination,
        MapMessage,
        Message,
        Producer,
        Queue,
        QueueBrowser,
        Requestor,
        Session,
        StreamMessage,
        TemporaryQueue,
        TemporaryTopic,
        TextMessage,
        Topic,
        connect,
    )

_CLIENT_NAMES = frozenset({
    "BytesMessage", "Connection", "Consumer", "Destination", "MapMessage", "Message",
    "Producer", "Queue", "Session", "StreamMessage", "TextMessage", "Topic", "connect",
    "QueueBrowser", "Requestor", "TemporaryQueue", "TemporaryTopic",
})

__all__ = [
    "BytesMessage", "Connection", "Consumer", "Destination", "MapMessage", "Message",
    "Producer", "Queue", "QueueBrowser", "Requestor", "Session", "StreamMessage", "TemporaryQueue",
    "TemporaryTopic", "TextMessage", "Topic", "__version__", "blocking", "connect",
]


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        value = getattr(importlib.import_module("emsfast.client"), name)
    elif name == "blocking":
        value = importlib.import_module("emsfast.blocking")
    else:
        raise AttributeError(f"module 'emsfast' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this hook (emsfast.TextMessage per message)
    return value
