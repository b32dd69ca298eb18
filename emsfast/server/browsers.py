"""Queue browsers (EMS.md 5.12): read a snapshot of a queue without consuming.

``browser.create`` takes the snapshot (references to the queued messages, no
copies) and ``browser.next`` hands it out in batches, so a large queue never
becomes one huge reply. A browsed message stays on the queue for consumers.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from emsfast.errors import InvalidError, NotFoundError
from emsfast.server.holders import Holder
from emsfast.server.messages import ServerMessage

if TYPE_CHECKING:
    from emsfast.server.connection import ClientConnection

Result = dict[str, Any] | None

# A batch stays well under any client's frame limit (max_msg_size + 64 KiB): at
# most this many bytes of blobs, or one message when a single one is larger.
BATCH_BYTES = 1024 * 1024
DEFAULT_BATCH = 100
MAX_BATCH = 1000


class Browser:
    __slots__ = ("holder", "messages", "pos")

    def __init__(self, holder: Holder, messages: list[ServerMessage]) -> None:
        self.holder = holder
        self.messages = messages
        self.pos = 0


def _u32(req: dict[str, Any], key: str) -> int:
    value = req.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**32:
        raise InvalidError(f"'{key}' must be an unsigned 32-bit integer, got {value!r}")
    return value


def browser_create(conn: ClientConnection, req: dict[str, Any]) -> Result:
    bid = _u32(req, "browser")
    name = req.get("dest")
    if not isinstance(name, str) or not name:
        raise InvalidError(f"'dest' must be a non-empty string, got {name!r}")
    if bid in conn.browsers:
        raise InvalidError(f"browser {bid} already exists")
    text = req.get("selector")
    if text is not None and not isinstance(text, str):
        raise InvalidError(f"'selector' must be a string, got {text!r}")
    selector = conn.compile_selector(text) if text else None
    conn.server.authz.check_browser(conn, name)
    holder = conn.broker.queue(name)
    server = conn.broker.server_name
    redeliveries = holder.redeliveries
    snapshot = [m for m in holder.iter_ready()
                if selector is None
                or selector.matches(m.field_getter(server, redeliveries.get(m.id, 0)))]
    conn.browsers[bid] = Browser(holder, snapshot)
    return {"count": len(snapshot)}


def browser_next(conn: ClientConnection, req: dict[str, Any]) -> Result:
    bid = _u32(req, "browser")
    browser = conn.browsers.get(bid)
    if browser is None:
        raise NotFoundError(f"browser {bid} does not exist")
    want = req.get("max", DEFAULT_BATCH)
    if not isinstance(want, int) or isinstance(want, bool) or want < 1:
        raise InvalidError(f"'max' must be a positive integer, got {want!r}")
    want = min(want, MAX_BATCH)
    limit = min(BATCH_BYTES, conn.server.max_msg_size)
    now = int(time.time() * 1000)
    redeliveries = browser.holder.redeliveries
    out: list[list[Any]] = []
    size = 0
    messages, pos = browser.messages, browser.pos
    while pos < len(messages) and len(out) < want:
        msg = messages[pos]
        if out and size + msg.size > limit:
            break
        pos += 1
        if msg.expiration and msg.expiration <= now:
            continue
        out.append([msg.id, redeliveries.get(msg.id, 0) + 1, msg.blob])
        size += msg.size
    browser.pos = pos
    done = pos >= len(messages)
    if done:
        del conn.browsers[bid]
    return {"messages": out, "done": done}


def browser_close(conn: ClientConnection, req: dict[str, Any]) -> Result:
    conn.browsers.pop(_u32(req, "browser"), None)
    return None


HANDLERS = {
    "browser.create": browser_create,
    "browser.next": browser_next,
    "browser.close": browser_close,
}
