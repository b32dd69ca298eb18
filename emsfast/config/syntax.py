"""Line grammar shared by every EMS configuration file (EMS.md 3.1, 4).

Every parsed line keeps its file, line number and raw text, so an error can name
where it came from and a later write-back can rewrite just that line.

Value parsers (``parse_bool``, ``parse_size``, ...) raise plain ``ValueError``
saying what was expected; the caller knows the file, line and key and turns it
into a ``ConfigError`` with ``config_error``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from emsfast.errors import ConfigError

# EMS documents this limit for tibemsd.conf; longer lines are refused, not truncated.
MAX_LINE_LENGTH = 256_000
# Numbers from config files end up in C int64s (timers, msgpack replies, message
# expirations), so larger ones are refused here rather than crashing at use.
MAX_NUMBER = 2**63 - 1

TRUE_WORDS = frozenset({"enable", "enabled", "true", "yes", "on"})
FALSE_WORDS = frozenset({"disable", "disabled", "false", "no", "off"})

_COMMENT_CHARS = ("#", ";")
_ASSIGN_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*)\s*=\s*(.*)")
_SIZE_RE = re.compile(r"([0-9]+)\s*([kmg]?)b?", re.IGNORECASE)
_TIME_RE = re.compile(r"([0-9]+)\s*([a-z]*)", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_TIME_UNITS_MS = {
    "msec": 1,
    "ms": 1,
    "": 1000,
    "sec": 1000,
    "secs": 1000,
    "s": 1000,
    "min": 60_000,
    "mins": 60_000,
    "m": 60_000,
    "hour": 3_600_000,
    "hours": 3_600_000,
    "hr": 3_600_000,
    "h": 3_600_000,
    "day": 86_400_000,
    "days": 86_400_000,
    "d": 86_400_000,
}


@dataclass(frozen=True, slots=True)
class Line:
    """One meaningful (non-blank, non-comment) line of a config file."""

    path: str
    number: int
    raw: str  # as in the file, without the line break

    @property
    def text(self) -> str:
        return self.raw.strip()

    @property
    def where(self) -> str:
        return f"{self.path}:{self.number}"


@dataclass(frozen=True, slots=True)
class Item:
    """One ``name = value`` line; ``key`` is lower-cased, ``value`` unquoted."""

    key: str
    value: str
    path: str
    line: int
    raw: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def config_error(path: str | None, line: int | None, key: str | None, problem: str) -> ConfigError:
    """Build ``path:line: key: problem`` with the location kept as attributes."""
    prefix = ""
    if path is not None:
        prefix = f"{path}:{line}: " if line else f"{path}: "
    if key is not None:
        prefix += f"{key}: "
    return ConfigError(prefix + problem, path=path, line=line, key=key)


def read_lines(path: str | os.PathLike[str]) -> list[Line]:
    """Meaningful lines of ``path``; a missing or unreadable file is a ConfigError."""
    name = os.fspath(path)
    try:
        # surrogateescape: odd bytes survive a round trip through write-back.
        with open(name, encoding="utf-8", errors="surrogateescape", newline=None) as f:
            text = f.read()
    except FileNotFoundError:
        raise config_error(name, None, None, "file not found") from None
    except OSError as exc:
        raise config_error(name, None, None, f"cannot read: {exc.strerror}") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines: list[Line] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        if len(raw) > MAX_LINE_LENGTH:
            raise config_error(name, number, None, f"line longer than {MAX_LINE_LENGTH} characters")
        stripped = raw.strip()
        if not stripped or stripped.startswith(_COMMENT_CHARS):
            continue
        lines.append(Line(name, number, raw.rstrip("\r")))
    return lines


def parse_assignment(line: Line) -> Item:
    """Split ``name = value``; the whole value may be double-quoted."""
    m = _ASSIGN_RE.fullmatch(line.text)
    if m is None:
        raise config_error(
            line.path, line.number, None, f"expected 'name = value', got {_clip(line.text)!r}"
        )
    key = m.group(1).lower()
    try:
        value = unquote(m.group(2).strip())
    except ValueError as exc:
        raise config_error(line.path, line.number, key, str(exc)) from None
    return Item(key, value, line.path, line.number, line.raw)


def read_assignments(path: str | os.PathLike[str]) -> list[Item]:
    """All ``name = value`` items of a tibemsd.conf-style file, in file order."""
    return [parse_assignment(line) for line in read_lines(path)]


def unquote(text: str) -> str:
    """Strip one pair of surrounding double quotes; EMS has no escapes inside."""
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise ValueError(f"unterminated quote in {_clip(text)!r}")
        return text[1:-1]
    return text


def split_list(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside double quotes; items are stripped, empty ones dropped.

    Quotes are kept in the items (``selector="a, b"`` stays whole) so the caller
    can split ``name=value`` first and unquote the value.
    """
    items: list[str] = []
    start = 0
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            items.append(text[start:i])
            start = i + 1
    if quoted:
        raise ValueError(f"unterminated quote in {_clip(text)!r}")
    items.append(text[start:])
    return [item.strip() for item in items if item.strip()]


def parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"expected enabled or disabled, got {text!r}")


def _bounded(digits: str, scale: int, text: str) -> int:
    # Length first: int() refuses over 4300 digits with a message naming no key.
    if len(digits.lstrip("0")) > 19 or int(digits) * scale > MAX_NUMBER:
        raise ValueError(f"{_clip(text)!r} is too large; at most {MAX_NUMBER}")
    return int(digits) * scale


def parse_int(text: str, minimum: int = 0) -> int:
    t = text.strip()
    if re.fullmatch(r"-?[0-9]+", t) is None:
        raise ValueError(f"expected a whole number, got {text!r}")
    value = _bounded(t.lstrip("-"), 1, text) * (-1 if t.startswith("-") else 1)
    if value < minimum:
        raise ValueError(f"expected a number >= {minimum}, got {text!r}")
    return value


def parse_size(text: str) -> int:
    """``10MB``, ``512KB``, ``2GB``, ``100`` (bytes); units are powers of 1024."""
    m = _SIZE_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"expected a size such as 10MB, got {text!r}")
    return _bounded(m.group(1), _SIZE_UNITS[m.group(2).lower()], text)


def parse_time_ms(text: str) -> int:
    """``500msec``, ``30sec``, ``10min``, ``2hour``, ``1day``; bare numbers are seconds."""
    m = _TIME_RE.fullmatch(text.strip())
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _TIME_UNITS_MS:
        raise ValueError(f"expected a time such as 30sec or 10min, got {text!r}")
    return _bounded(m.group(1), _TIME_UNITS_MS[unit], text)


def parse_seconds(text: str) -> float:
    """A tibemsd.conf timeout: bare seconds, or any ``parse_time_ms`` unit."""
    m = _TIME_RE.fullmatch(text.strip())
    if m is None or m.group(2).lower() not in _TIME_UNITS_MS:
        raise ValueError(f"expected seconds, got {text!r}")
    return parse_time_ms(text) / 1000


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
