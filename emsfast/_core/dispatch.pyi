"""The broker's per-message objects as C types."""

from collections.abc import Callable
from typing import Any, final

@final
class ServerMessage:
    id: int
    @property
    def blob(self) -> bytes: ...
    @property
    def stored(self) -> bool: ...
    def loaded(self) -> ServerMessage: ...
    delivery_mode: int
    priority: int
    timestamp: int
    expiration: int
    persistent: bool
    size: int
    origin: int
    def __init__(self, mid: int, blob: bytes, delivery_mode: int, priority: int,
                 timestamp: int, expiration: int, origin: int) -> None: ...
    def field_getter(self, server_name: str,
                     delivered: int = 0) -> Callable[[str], Any]: ...

@final
class Delivery:
    consumer: Any
    holder: Any
    msg: ServerMessage
    count: int
    def __init__(self, consumer: Any, holder: Any, msg: ServerMessage, count: int) -> None: ...

def parse_publish_message(body: bytes, mid: int, origin: int) -> tuple[int, int, ServerMessage]:
    """(producer, seq, message) from a PUBLISH body; FrameError if malformed."""

def stored_message(source: Any, holder: str, mid: int, size: int, delivery_mode: int,
                   priority: int, timestamp: int, expiration: int) -> ServerMessage:
    """A recovered persistent message: index fields only, the body stays in ``source``."""
