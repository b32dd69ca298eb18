"""How the sample consumer shows a message: a plain line, or one JSON object."""

from __future__ import annotations

import base64
import json
from typing import Any

from emsfast.client.messages import BytesMessage, MapMessage, Message, StreamMessage, TextMessage

__all__ = ["plain_line", "json_line", "json_object"]


def _json_default(value: object) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def plain_line(msg: Message) -> str:
    """Text as is; ``<N bytes>`` for bytes; JSON for map and stream bodies (bytes in base64)."""
    if isinstance(msg, TextMessage):
        return msg.text
    if isinstance(msg, BytesMessage):
        return f"<{len(msg.data)} bytes>"
    if isinstance(msg, MapMessage | StreamMessage):
        return json.dumps(msg.body, default=_json_default, ensure_ascii=False)
    return ""


def json_object(msg: Message) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": msg.message_id,
        "destination": msg.destination.name if msg.destination is not None else None,
        "body": msg.body,
        "properties": msg.properties,
        "redelivered": msg.redelivered,
        "delivery_count": msg.delivery_count,
        "priority": msg.priority,
    }
    if isinstance(msg, BytesMessage):
        obj["body"] = base64.b64encode(msg.data).decode("ascii")
        obj["body_encoding"] = "base64"
    return obj


def json_line(msg: Message) -> str:
    """One JSON object; bytes (the body or inside maps and properties) in base64."""
    return json.dumps(json_object(msg), default=_json_default, ensure_ascii=False)
