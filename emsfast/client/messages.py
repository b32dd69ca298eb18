"""Destinations and JMS message types, and their blob encoding (docs/protocol.md §5)."""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import msgpack

from emsfast._core.message import decode_message, encode_message
from emsfast.bodies import check_nesting
from emsfast.consts import (
    BODY_BYTES,
    BODY_MAP,
    BODY_MESSAGE,
    BODY_STREAM,
    BODY_TEXT,
    DELIVERY_MODES,
)
from emsfast.errors import FrameError, InvalidError

__all__ = [
    "BytesMessage",
    "Destination",
    "MapMessage",
    "Message",
    "Queue",
    "StreamMessage",
    "TextMessage",
    "Topic",
    "decode",
    "parse_property",
    "typed_value",
]

# int64 range: properties travel as msgpack ints and selectors compare them as longs.
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_MODE_NAMES = {v: k for k, v in DELIVERY_MODES.items()}


@dataclass(frozen=True, slots=True)
class Destination:
    name: str
    kind: ClassVar[str] = ""
    prefix: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidError(f"{self.kind} name must be a non-empty string, got {self.name!r}")

    @property
    def wire(self) -> str:
        """The meta header form: ``q:NAME`` / ``t:NAME``."""
        return f"{self.prefix}:{self.name}"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Queue(Destination):
    kind: ClassVar[str] = "queue"
    prefix: ClassVar[str] = "q"


@dataclass(frozen=True, slots=True)
class Topic(Destination):
    kind: ClassVar[str] = "topic"
    prefix: ClassVar[str] = "t"


# Received messages name few distinct destinations: share their objects.
_DEST_CACHE: dict[str, Destination] = {}
_DEST_CACHE_MAX = 4096


def destination_from_wire(text: object) -> Destination | None:
    if not isinstance(text, str):
        return None
    dest = _DEST_CACHE.get(text)
    if dest is not None:
        return dest
    if text.startswith("q:"):
        dest = Queue(text[2:])
    elif text.startswith("t:"):
        dest = Topic(text[2:])
    else:
        raise FrameError(f"bad destination header {text!r} in message meta")
    if len(_DEST_CACHE) >= _DEST_CACHE_MAX:
        _DEST_CACHE.clear()
    _DEST_CACHE[text] = dest
    return dest


class _Done:
    """What ``acknowledge()`` returns: it acts at once, ``await`` on it is optional."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()


_DONE = _Done()


class Message:
    """A JMS message with headers and properties only; the base of every type."""

    body_type: ClassVar[int] = BODY_MESSAGE
    # Defaults for received messages, which store only the headers they carry.
    correlation_id: str | None = None
    reply_to: Destination | None = None
    jms_type: str | None = None
    _ack_hook: Callable[[], None] | None = None

    def __init__(
        self,
        properties: Mapping[str, Any] | None = None,
        *,
        correlation_id: str | None = None,
        reply_to: Destination | None = None,
        jms_type: str | None = None,
    ) -> None:
        self.properties: dict[str, Any] = dict(properties) if properties else {}
        self.correlation_id = correlation_id
        self.reply_to = reply_to
        self.jms_type = jms_type
        # Set by send() or on receive.
        self.message_id: str | None = None
        self.destination: Destination | None = None
        self.delivery_mode: str | None = None
        self.priority: int | None = None
        self.timestamp: int = 0
        self.expiration: int = 0
        self.delivery_count: int = 0
        self._ack_hook: Callable[[], None] | None = None

    @property
    def redelivered(self) -> bool:
        return self.delivery_count > 1

    @property
    def body(self) -> Any:
        return None

    @property
    def headers(self) -> dict[str, Any]:
        """Every JMS header under its JMS name (computed on access, never per message).

        ``JMSDeliveryMode`` is the mode name (``"persistent"``, ...), ``JMSDestination``
        and ``JMSReplyTo`` are ``Queue``/``Topic`` objects, times are ms since the epoch.
        """
        return {
            "JMSDestination": self.destination,
            "JMSDeliveryMode": self.delivery_mode,
            "JMSExpiration": self.expiration,
            "JMSPriority": self.priority,
            "JMSMessageID": self.message_id,
            "JMSTimestamp": self.timestamp,
            "JMSCorrelationID": self.correlation_id,
            "JMSReplyTo": self.reply_to,
            "JMSType": self.jms_type,
            "JMSRedelivered": self.redelivered,
        }

    def get(self, name: str, default: Any = None) -> Any:
        """A header by JMS name, ``JMSXDeliveryCount``, else the property ``name``.

        JMSX properties a producer sets (``JMSXGroupID``, ``JMSXGroupSeq``) travel
        unchanged in ``properties``.
        """
        if name.startswith("JMS"):
            if name == "JMSXDeliveryCount":
                return self.delivery_count
            headers = self.headers
            if name in headers:
                return headers[name]
        return self.properties.get(name, default)

    def acknowledge(self) -> _Done:
        """Acknowledge per the session's mode (client: all taken so far; explicit: this one).

        Acts immediately; the result may be awaited (``await msg.acknowledge()``) or not,
        so the blocking facade uses the same call. A no-op for other modes and for
        messages that were not received.
        """
        if self._ack_hook is not None:
            self._ack_hook()
        return _DONE

    def _encode_body(self) -> bytes:
        return b""

    def _set_body(self, raw: bytes) -> None:
        pass

    def encode(self, mode: int, priority: int, timestamp: int, expiration: int,
               dest: Destination) -> bytes:
        headers: dict[str, Any] = {"dest": dest.wire}
        if self.correlation_id is not None:
            headers["cid"] = self.correlation_id
        if self.jms_type is not None:
            headers["type"] = self.jms_type
        if self.reply_to is not None:
            headers["reply"] = self.reply_to.wire
        props = self.properties
        if props:
            _check_properties(props)
        return encode_message(self.body_type, mode, priority, timestamp, expiration, headers,
                              props or None, self._encode_body())

    def __repr__(self) -> str:
        extra = f" id={self.message_id}" if self.message_id else ""
        return f"<{type(self).__name__}{extra} body={self.body!r} properties={self.properties!r}>"


class TextMessage(Message):
    body_type: ClassVar[int] = BODY_TEXT

    def __init__(self, text: str = "", properties: Mapping[str, Any] | None = None,
                 **headers: Any) -> None:
        super().__init__(properties, **headers)
        if not isinstance(text, str):
            raise InvalidError(f"TextMessage text must be str, got {type(text).__name__}")
        self.text = text

    @property
    def body(self) -> str:
        return self.text

    def _encode_body(self) -> bytes:
        return self.text.encode("utf-8")

    def _set_body(self, raw: bytes) -> None:
        self.text = raw.decode("utf-8")


class BytesMessage(Message):
    body_type: ClassVar[int] = BODY_BYTES

    def __init__(self, data: bytes = b"", properties: Mapping[str, Any] | None = None,
                 **headers: Any) -> None:
        super().__init__(properties, **headers)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidError(f"BytesMessage data must be bytes, got {type(data).__name__}")
        self.data = bytes(data)

    @property
    def body(self) -> bytes:
        return self.data

    def _encode_body(self) -> bytes:
        return self.data

    def _set_body(self, raw: bytes) -> None:
        self.data = raw


class MapMessage(Message):
    body_type: ClassVar[int] = BODY_MAP

    def __init__(self, map: Mapping[str, Any] | None = None,  # noqa: A002 - JMS name
                 properties: Mapping[str, Any] | None = None, **headers: Any) -> None:
        super().__init__(properties, **headers)
        self.map: dict[str, Any] = dict(map) if map else {}

    @property
    def body(self) -> dict[str, Any]:
        return self.map

    def _encode_body(self) -> bytes:
        for key in self.map:
            if not isinstance(key, str):
                raise InvalidError(f"MapMessage keys must be str, got {key!r}")
        check_nesting(self.map, "MapMessage")
        return _pack(self.map, "MapMessage")

    def _set_body(self, raw: bytes) -> None:
        value = _unpack(raw)
        if not isinstance(value, dict):
            raise FrameError("MapMessage body is not a msgpack map")
        check_nesting(value, "MapMessage")
        self.map = value


class StreamMessage(Message):
    body_type: ClassVar[int] = BODY_STREAM

    def __init__(self, items: Sequence[Any] | None = None,
                 properties: Mapping[str, Any] | None = None, **headers: Any) -> None:
        super().__init__(properties, **headers)
        self.items: list[Any] = list(items) if items else []

    @property
    def body(self) -> list[Any]:
        return self.items

    def _encode_body(self) -> bytes:
        check_nesting(self.items, "StreamMessage")
        return _pack(self.items, "StreamMessage")

    def _set_body(self, raw: bytes) -> None:
        value = _unpack(raw)
        if not isinstance(value, list):
            raise FrameError("StreamMessage body is not a msgpack array")
        check_nesting(value, "StreamMessage")
        self.items = value


_CLASSES: dict[int, type[Message]] = {
    BODY_MESSAGE: Message,
    BODY_TEXT: TextMessage,
    BODY_BYTES: BytesMessage,
    BODY_MAP: MapMessage,
    BODY_STREAM: StreamMessage,
}


# (headers dict, fields read from it) of the last message decoded; one tuple so
# that threads never see a torn pair.
_last_headers: tuple[object, tuple[Any, Any, Any, Any]] = (object(), (None, None, None, None))


def decode(blob: bytes, message_id: str | None = None, delivery_count: int = 1) -> Message:
    """Build the message object a consumer hands to the application."""
    body_type, mode, priority, ts, exp, headers, props, body = decode_message(blob)
    cls = _CLASSES[body_type]
    msg = cls.__new__(cls)
    global _last_headers
    last = _last_headers
    if headers is last[0]:      # the core shares the dict of a repeated meta block
        dest, reply, cid, jtype = last[1]
    elif headers:
        dest = destination_from_wire(headers.get("dest"))
        reply = destination_from_wire(headers.get("reply"))
        cid, jtype = headers.get("cid"), headers.get("type")
        cid = cid if isinstance(cid, str) else None
        jtype = jtype if isinstance(jtype, str) else None
        _last_headers = (headers, (dest, reply, cid, jtype))
    else:
        dest = reply = cid = jtype = None
    # One dict literal instead of a dozen attribute stores: this runs per message.
    # Headers that are usually absent fall back to the class defaults (None).
    d = msg.__dict__ = {
        "properties": props if props is not None else {}, "message_id": message_id,
        "destination": dest, "delivery_mode": _MODE_NAMES[mode], "priority": priority,
        "timestamp": ts, "expiration": exp, "delivery_count": delivery_count,
    }
    if reply is not None:
        d["reply_to"] = reply
    if cid is not None:
        d["correlation_id"] = cid
    if jtype is not None:
        d["jms_type"] = jtype
    if body_type == BODY_TEXT:
        # The server passes blobs through unread, so any producer can send this.
        try:
            d["text"] = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FrameError(f"TextMessage body is not valid UTF-8: {exc}") from None
    else:
        msg._set_body(body)
    return msg


def _pack(value: object, what: str) -> bytes:
    try:
        return msgpack.packb(value, use_bin_type=True, strict_types=False)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidError(f"{what} body cannot be encoded: {exc}") from exc


def _unpack(raw: bytes) -> Any:
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.ExtraData) as exc:
        raise FrameError(f"message body is not valid msgpack: {exc}") from exc


def _check_properties(props: Mapping[str, Any]) -> None:
    for key, value in props.items():
        if not isinstance(key, str) or not key:
            raise InvalidError(f"property names must be non-empty str, got {key!r}")
        if value is None or isinstance(value, bool | float | str | bytes):
            continue
        if isinstance(value, int):
            if not _I64_MIN <= value <= _I64_MAX:
                raise InvalidError(f"property {key!r}: {value} does not fit in 64 bits")
            continue
        raise InvalidError(
            f"property {key!r}: {type(value).__name__} is not a JMS property type "
            "(None, bool, int, float, str, bytes)"
        )


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")


def typed_value(text: str) -> bool | int | float | str:
    """Type a command-line property value: integer, float, true/false, else string."""
    if _INT.fullmatch(text):
        value = int(text)
        if _I64_MIN <= value <= _I64_MAX:
            return value
        return text
    if _FLOAT.fullmatch(text):
        return float(text)
    if text == "true":
        return True
    if text == "false":
        return False
    return text


def parse_property(text: str) -> tuple[str, bool | int | float | str]:
    """Split ``KEY=VALUE`` and type the value (see ``typed_value``)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InvalidError(f"property {text!r}: expected KEY=VALUE")
    return key, typed_value(value)
