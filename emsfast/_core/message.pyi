"""Message blob codec (docs/protocol.md §5)."""

from typing import Any

def encode_message(
    body_type: int,
    delivery_mode: int,
    priority: int,
    timestamp: int,
    expiration: int,
    headers: dict[str, Any] | None,
    properties: dict[str, Any] | None,
    body: bytes,
) -> bytes: ...

def peek_message(blob: bytes) -> tuple[int, int, int, int, int]:
    """Validate the fixed header and meta length; return
    (body_type, delivery_mode, priority, timestamp, expiration). FrameError if bad."""

def decode_meta(blob: bytes) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(headers, properties) from the meta block."""

def decode_message(
    blob: bytes,
) -> tuple[int, int, int, int, int, dict[str, Any] | None, dict[str, Any] | None, bytes]:
    """(body_type, delivery_mode, priority, timestamp, expiration, headers, properties, body)"""

def message_body(blob: bytes) -> bytes:
    """The raw body bytes after the meta block."""
