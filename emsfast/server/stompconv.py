"""Messages across the STOMP boundary, both ways.

STOMP SEND -> TextMessage when ``content-type`` is ``text/*`` (or absent and the
body is UTF-8), else BytesMessage; headers without a STOMP meaning become string
properties. A stored message -> MESSAGE headers: JMS headers under their STOMP
names, properties as strings (booleans ``true``/``false``, bytes in hex).
"""

from __future__ import annotations

import time
from typing import Any

from emsfast._core.message import decode_message, encode_message
from emsfast.consts import BODY_BYTES, BODY_TEXT, DEFAULT_PRIORITY, NON_PERSISTENT, PERSISTENT
from emsfast.errors import InvalidError
from emsfast.server.messages import ServerMessage
from emsfast.server.stompframes import Frame

# Headers with a STOMP meaning; every other SEND header becomes a property.
RESERVED = frozenset({
    "destination", "receipt", "transaction", "content-length", "content-type", "persistent",
    "priority", "expires", "correlation-id", "reply-to", "type", "message-id", "subscription",
    "ack", "timestamp", "redelivered", "JMSXDeliveryCount",
})


def parse_destination(text: str | None) -> tuple[str, str]:
    if text:
        for prefix, kind in (("/queue/", "queue"), ("/topic/", "topic")):
            if text.startswith(prefix) and len(text) > len(prefix):
                return kind, text[len(prefix):]
    raise InvalidError(f"destination must be /queue/NAME or /topic/NAME, got {text!r}")


def _stomp_dest(meta: object) -> str | None:
    if isinstance(meta, str) and meta[:2] in ("q:", "t:"):
        return ("/queue/" if meta[0] == "q" else "/topic/") + meta[2:]
    return None


def stomp_message(frame: Frame, kind: str, name: str, mid: int, origin: int) -> ServerMessage:
    """A SEND frame as the message a JMS client would have published."""
    h = frame.headers
    mode = PERSISTENT if h.get("persistent", "").lower() == "true" else NON_PERSISTENT
    priority = int(h.get("priority") or DEFAULT_PRIORITY)
    if not 0 <= priority <= 9:
        raise InvalidError(f"priority must be 0..9, got {priority}")
    expiration = int(h.get("expires") or 0)
    if not 0 <= expiration < 1 << 63:   # stored as an int64 of ms since the epoch
        raise InvalidError(f"expires must be 0..{(1 << 63) - 1} ms since the epoch, "
                           f"got {expiration}")
    ctype = h.get("content-type")
    body_type = BODY_BYTES
    if ctype is None or ctype.startswith("text/"):
        try:
            frame.body.decode("utf-8")
            body_type = BODY_TEXT
        except UnicodeDecodeError:
            if ctype is not None:
                raise InvalidError("a text/* body must be UTF-8") from None
    meta: dict[str, Any] = {"dest": ("q:" if kind == "queue" else "t:") + name}
    if "correlation-id" in h:
        meta["cid"] = h["correlation-id"]
    if "type" in h:
        meta["type"] = h["type"]
    if "reply-to" in h:
        rkind, rname = parse_destination(h["reply-to"])
        meta["reply"] = ("q:" if rkind == "queue" else "t:") + rname
    props = {k: v for k, v in h.items() if k not in RESERVED}
    now = int(time.time() * 1000)
    blob = encode_message(body_type, mode, priority, now, expiration, meta,
                          props or None, frame.body)
    return ServerMessage(mid, blob, mode, priority, now, expiration, origin)



def message_headers(msg: ServerMessage, count: int,
                    server_name: str) -> tuple[dict[str, str], bytes]:
    """MESSAGE headers and body for a stored message, whoever published it."""
    body_type, mode, priority, ts, exp, meta, props, body = decode_message(msg.blob)
    headers: dict[str, str] = {"message-id": f"ID:{server_name}.{msg.id}"}
    meta = meta or {}
    dest = _stomp_dest(meta.get("dest"))
    if dest is not None:
        headers["destination"] = dest
    headers["content-type"] = ("text/plain;charset=utf-8" if body_type == BODY_TEXT
                               else "application/octet-stream")
    if msg.persistent:
        headers["persistent"] = "true"
    headers["priority"] = str(priority)
    headers["timestamp"] = str(ts)
    if exp:
        headers["expires"] = str(exp)
    if "cid" in meta:
        headers["correlation-id"] = str(meta["cid"])
    if "type" in meta:
        headers["type"] = str(meta["type"])
    reply = _stomp_dest(meta.get("reply"))
    if reply is not None:
        headers["reply-to"] = reply
    if count > 1:
        headers["redelivered"] = "true"
    for key, value in (props or {}).items():
        if key in RESERVED or key in headers or value is None:
            continue
        if isinstance(value, bool):
            headers[key] = "true" if value else "false"
        elif isinstance(value, bytes):
            headers[key] = value.hex()
        else:
            headers[key] = str(value)
    return headers, body
