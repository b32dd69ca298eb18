"""STOMP 1.2 frames: an incremental parser with limits, and an encoder.

The parser is fed whatever the socket delivered and returns complete frames; a
frame split at any byte is reassembled. Everything a peer controls is capped
before it is buffered: the header block, the header count, the body length.
A malformed frame sets ``error`` (a ``FrameError``); the connection answers
ERROR and closes, as STOMP 1.2 says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from emsfast.errors import FrameError

CLIENT_COMMANDS = frozenset({
    "CONNECT", "STOMP", "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK", "BEGIN",
    "COMMIT", "ABORT", "DISCONNECT",
})
# A command line plus headers of a real client is well under 1 KiB; 64 KiB leaves
# room for long selectors and property headers while bounding a hostile peer.
MAX_HEAD = 64 * 1024
MAX_HEADERS = 256

# CONNECT and CONNECTED carry no escapes (STOMP 1.2, "Value Encoding").
_RAW_COMMANDS = frozenset({"CONNECT", "STOMP", "CONNECTED"})
_UNESCAPE = {"r": "\r", "n": "\n", "c": ":", "\\": "\\"}


@dataclass(slots=True)
class Frame:
    command: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            nxt = text[i + 1:i + 2]
            if nxt not in _UNESCAPE:
                raise FrameError(f"undefined escape sequence '\\{nxt}' in a header")
            out.append(_UNESCAPE[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def escape(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")
            .replace(":", "\\c"))


class StompParser:
    """Feed bytes, get frames. ``max_body`` is the body size limit, named in errors
    as ``limit_name`` (the parameter it comes from)."""

    def __init__(self, max_body: int, limit_name: str = "max_msg_size") -> None:
        self.max_body = max_body
        self.limit_name = limit_name
        self._buf = bytearray()
        self._head: Frame | None = None     # parsed head waiting for its body
        self._length = -1                   # content-length of that body, -1 = to NUL
        self.heartbeats = 0                 # bare EOLs seen (client heart-beats)
        self.error: FrameError | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """Complete frames so far. A malformed one sets ``error`` and stops parsing:
        the frames before it are still returned, so they take effect first."""
        if self.error is not None:
            return []
        self._buf += data
        frames: list[Frame] = []
        try:
            while True:
                if self._head is None and not self._take_head():
                    break
                frame = self._take_body()
                if frame is None:
                    break
                frames.append(frame)
        except FrameError as exc:
            self.error = exc
            self._buf.clear()
        return frames

    def _take_head(self) -> bool:
        buf = self._buf
        # EOLs between frames are heart-beats.
        skip = 0
        while skip < len(buf) and buf[skip] in (0x0A, 0x0D):
            if buf[skip] == 0x0A:
                self.heartbeats += 1
            skip += 1
        if skip:
            del buf[:skip]
        end = buf.find(b"\n\n")
        end_crlf = buf.find(b"\r\n\r\n")
        if end_crlf != -1 and (end == -1 or end_crlf < end):
            end, sep = end_crlf, 4
        else:
            sep = 2
        if end == -1:
            if len(buf) > MAX_HEAD:
                raise FrameError(f"frame head exceeds {MAX_HEAD} bytes")
            return False
        if end > MAX_HEAD:
            raise FrameError(f"frame head exceeds {MAX_HEAD} bytes")
        try:
            text = bytes(buf[:end]).decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("frame head is not UTF-8") from None
        del buf[:end + sep]
        lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
        command = lines[0]
        if command not in CLIENT_COMMANDS:
            raise FrameError(f"unknown command {command[:40]!r}")
        if len(lines) - 1 > MAX_HEADERS:
            raise FrameError(f"more than {MAX_HEADERS} headers")
        raw = command in _RAW_COMMANDS
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep_, value = line.partition(":")
            if not sep_:
                raise FrameError(f"header line without ':': {line[:40]!r}")
            if not raw:
                name, value = _unescape(name), _unescape(value)
            headers.setdefault(name, value)     # 1.2: the first occurrence wins
        length = -1
        if "content-length" in headers:
            text_len = headers["content-length"]
            if not text_len.isdigit():
                raise FrameError(f"bad content-length {text_len[:20]!r}")
            length = int(text_len)
            if length > self.max_body:
                raise FrameError(f"body of {length} bytes exceeds "
                                 f"{self.limit_name} ({self.max_body})")
        self._head, self._length = Frame(command, headers), length
        return True

    def _take_body(self) -> Frame | None:
        buf = self._buf
        head = self._head
        assert head is not None
        if self._length >= 0:
            if len(buf) < self._length + 1:
                return None
            if buf[self._length] != 0:
                raise FrameError("frame body is not followed by NUL (content-length wrong?)")
            body = bytes(buf[:self._length])
            del buf[:self._length + 1]
        else:
            nul = buf.find(b"\0")
            if nul == -1:
                if len(buf) > self.max_body:
                    raise FrameError(f"body exceeds {self.limit_name} ({self.max_body})")
                return None
            body = bytes(buf[:nul])
            del buf[:nul + 1]
        head.body = body
        self._head = None
        self._length = -1
        return head


def encode_frame(command: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    raw = command in _RAW_COMMANDS
    parts = [command]
    for name, value in headers.items():
        parts.append(f"{name}:{value}" if raw else f"{escape(name)}:{escape(value)}")
    if body or command in ("MESSAGE", "ERROR"):
        parts.append(f"content-length:{len(body)}")
    return ("\n".join(parts) + "\n\n").encode("utf-8") + body + b"\0"
