"""The broker's per-message objects as C types."""

from collections.abc import Callable
from typing import Any, final

class ServerMessage:
    id: int
    blob: bytes
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
