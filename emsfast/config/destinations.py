"""``queues.conf`` / ``topics.conf``: destination entries and inheritance (EMS.md 4.4, 5.3, 5.4).

A line is ``name  prop,prop=value,...``. Wildcard entries (``foo.>``) are
parents of every name they match and say which dynamic names may be created.
``DestinationTable.resolve`` merges an exact entry with all its parents into a
``DestinationProps``; the server calls it once per destination it creates.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from emsfast.config.names import WildcardPattern, compile_pattern, validate_destination_name
from emsfast.config.syntax import (
    Line,
    config_error,
    parse_int,
    parse_size,
    parse_time_ms,
    read_lines,
    split_list,
    unquote,
)
from emsfast.consts import DEFAULT_QUEUE_PREFETCH, DEFAULT_TOPIC_PREFETCH
from emsfast.errors import ConfigError, InvalidError

Kind = Literal["queue", "topic"]

DEFAULT_STORE = "$sys.nonfailsafe"
FAILSAFE_STORE = "$sys.failsafe"
UNDELIVERED_QUEUE = "$sys.undelivered"
TEMP_PREFIX = "$TMP$."
PREFETCH_NONE = -1
DEFAULT_PREFETCH: dict[str, int] = {
    "queue": DEFAULT_QUEUE_PREFETCH,
    "topic": DEFAULT_TOPIC_PREFETCH,
}
# EMS bounds (EMS.md 5.4): a delay shorter than 15 s or longer than 8 h is refused.
MIN_REDELIVERY_DELAY_MS = 15_000
MAX_REDELIVERY_DELAY_MS = 8 * 3_600_000
# A message's expiration is now + this, in an int64 of ms: leave room for now.
MAX_EXPIRATION_MS = 2**62
# Dynamic names come from clients; bound the memo so they cannot grow it forever.
_CACHE_LIMIT = 10_000
_JNDI_RE = re.compile(r"\[[^\]]*\]\s*")


class OverflowPolicy(StrEnum):
    DEFAULT = "default"
    DISCARD_OLD = "discardOld"
    REJECT_INCOMING = "rejectIncoming"


# Several parents: the stricter policy wins (EMS.md 5.3).
_OVERFLOW_RANK = {
    OverflowPolicy.DEFAULT: 0,
    OverflowPolicy.DISCARD_OLD: 1,
    OverflowPolicy.REJECT_INCOMING: 2,
}
_TRACE_RANK = {None: 0, "default": 1, "body": 2}


@dataclass(frozen=True, slots=True)
class DestinationProps:
    """Effective properties of one destination; 0 = no limit, prefetch -1 = none."""

    secure: bool = False
    store: str = DEFAULT_STORE
    maxbytes: int = 0
    maxmsgs: int = 0
    overflow_policy: OverflowPolicy = OverflowPolicy.DEFAULT
    exclusive: bool = False
    prefetch: int = DEFAULT_QUEUE_PREFETCH
    max_redelivery: int = 0
    expiration_ms: int = 0
    redelivery_delay_ms: int = 0
    flow_control: int = 0
    sender_name: bool = False
    sender_name_enforced: bool = False
    trace: str | None = None  # None, "default" (ids and sizes) or "body"
    global_: bool = False
    static: bool = False  # an exact (non-wildcard) entry names this destination


@dataclass(frozen=True, slots=True)
class DestinationEntry:
    """One line of queues.conf/topics.conf; None means "not set on this line"."""

    name: str
    path: str
    line: int
    raw: str
    secure: bool = False
    exclusive: bool = False
    sender_name: bool = False
    sender_name_enforced: bool = False
    global_: bool = False
    trace: str | None = None
    store: str | None = None
    overflow_policy: OverflowPolicy | None = None
    prefetch: int | None = None
    maxbytes: int | None = None
    maxmsgs: int | None = None
    max_redelivery: int | None = None
    expiration_ms: int | None = None
    redelivery_delay_ms: int | None = None
    flow_control: int | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


_FLAGS = ("secure", "exclusive", "sender_name", "sender_name_enforced", "global_")
_LIMITS = (
    "maxbytes",
    "maxmsgs",
    "max_redelivery",
    "expiration_ms",
    "redelivery_delay_ms",
    "flow_control",
)


def _overflow(text: str) -> OverflowPolicy:
    for policy in OverflowPolicy:
        if text.lower() == policy.value.lower():
            return policy
    raise ValueError(f"expected default, discardOld or rejectIncoming, got {text!r}")


def _prefetch(text: str) -> int:
    if text.strip().lower() == "none":
        return PREFETCH_NONE
    try:
        return parse_int(text)
    except ValueError:
        raise ValueError(f"expected a number or none, got {text!r}") from None


def _max_redelivery(text: str) -> int:
    value = parse_int(text)
    if value == 1 or value > 255:
        raise ValueError(f"expected 0 or 2..255, got {text!r}")
    return value


def _redelivery_delay(text: str) -> int:
    value = parse_time_ms(text)
    if value and not MIN_REDELIVERY_DELAY_MS <= value <= MAX_REDELIVERY_DELAY_MS:
        raise ValueError(f"expected 0 or 15sec..8hour, got {text!r}")
    return value


def _expiration(text: str) -> int:
    value = parse_time_ms(text)
    if value > MAX_EXPIRATION_MS:
        raise ValueError(f"expected at most {MAX_EXPIRATION_MS} ms, got {text!r}")
    return value


def _store_name(text: str) -> str:
    if not text.strip():
        raise ValueError("expected a store name")
    return text.strip()


# property (lower case) -> (EMS spelling, DestinationEntry field, parser); parser None = flag.
_PROPS: dict[str, tuple[str, str, Callable[[str], object] | None]] = {
    "secure": ("secure", "secure", None),
    "exclusive": ("exclusive", "exclusive", None),
    "sender_name": ("sender_name", "sender_name", None),
    "sender_name_enforced": ("sender_name_enforced", "sender_name_enforced", None),
    "global": ("global", "global_", None),
    "failsafe": ("failsafe", "store", None),
    "trace": ("trace", "trace", None),
    "store": ("store", "store", _store_name),
    "maxbytes": ("maxbytes", "maxbytes", parse_size),
    "maxmsgs": ("maxmsgs", "maxmsgs", parse_int),
    "overflowpolicy": ("overflowPolicy", "overflow_policy", _overflow),
    "prefetch": ("prefetch", "prefetch", _prefetch),
    "maxredelivery": ("maxRedelivery", "max_redelivery", _max_redelivery),
    "expiration": ("expiration", "expiration_ms", _expiration),
    "redeliverydelay": ("redeliveryDelay", "redelivery_delay_ms", _redelivery_delay),
    "flowcontrol": ("flowControl", "flow_control", parse_size),
}
_QUEUE_ONLY = frozenset({"exclusive", "maxRedelivery", "redeliveryDelay"})


class DestinationTable:
    """Entries of one queues.conf or topics.conf, with cached resolution."""

    def __init__(
        self,
        kind: Kind,
        path: str,
        entries: list[DestinationEntry],
        warnings: list[str] | None = None,
    ) -> None:
        self.kind: Kind = kind
        self.path = path
        self.warnings: list[str] = warnings if warnings is not None else []
        self.entries: list[DestinationEntry] = list(entries)
        self._exact: dict[str, DestinationEntry] = {}
        self._wild: list[tuple[WildcardPattern, DestinationEntry]] = []
        self._cache: dict[str, DestinationProps | None] = {}
        for entry in self.entries:
            pattern = compile_pattern(entry.name)
            if pattern.wildcard:
                self._wild.append((pattern, entry))
            else:
                self._exact[entry.name] = entry
        if kind == "queue" and UNDELIVERED_QUEUE not in self._exact:
            builtin = DestinationEntry(UNDELIVERED_QUEUE, "<built-in>", 0, "")
            self.entries.append(builtin)
            self._exact[UNDELIVERED_QUEUE] = builtin

    def get(self, name: str) -> DestinationEntry | None:
        """The entry written for exactly ``name`` (wildcard entries included)."""
        entry = self._exact.get(name)
        if entry is None:
            entry = next((e for p, e in self._wild if p.pattern == name), None)
        return entry

    def static_names(self) -> list[str]:
        """Names of exact (non-wildcard) entries, in file order: created at start."""
        return list(self._exact)

    def resolve(self, name: str) -> DestinationProps | None:
        """Merged properties of ``name``, or None if no entry allows it.

        ``name`` must already be a valid concrete name (``validate_destination_name``).
        Temporary destinations (``$TMP$.``) always resolve. Raises ``ConfigError``
        when parents give conflicting stores, since the destination cannot exist.
        """
        try:
            return self._cache[name]
        except KeyError:
            pass
        own = self._exact.get(name)
        parents = [entry for pattern, entry in self._wild if pattern(name)]
        if own is None and not parents and not name.startswith(TEMP_PREFIX):
            props = None
        else:
            props = _merge(self.kind, name, own, parents)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[name] = props
        return props


def load_destinations(path: str | os.PathLike[str], kind: Kind, required: bool) -> DestinationTable:
    """Read queues.conf or topics.conf.

    ``required``: the file was named in tibemsd.conf, so a missing file is an
    error; otherwise it yields an empty table (only built-ins) and a warning.
    """
    if kind not in DEFAULT_PREFETCH:
        raise ValueError(f"kind must be 'queue' or 'topic', got {kind!r}")
    name = os.fspath(path)
    warnings: list[str] = []
    if not required and not os.path.exists(name):
        warnings.append(f"{name}: file not found; no {kind}s are configured")
        return DestinationTable(kind, name, [], warnings)
    entries: list[DestinationEntry] = []
    seen: dict[str, DestinationEntry] = {}
    for line in read_lines(name):
        entry = _parse_entry(line, kind, warnings)
        if entry is None:
            continue
        first = seen.get(entry.name)
        if first is not None:
            warnings.append(
                f"{entry.where}: {entry.name!r} already defined at line "
                f"{first.line}; the first definition wins"
            )
            continue
        seen[entry.name] = entry
        entries.append(entry)
    table = DestinationTable(kind, name, entries, warnings)
    for static in table.static_names():
        table.resolve(static)  # a store conflict on a static destination fails at start
    return table


def _parse_entry(line: Line, kind: Kind, warnings: list[str]) -> DestinationEntry | None:
    text = line.text
    if text.startswith("["):
        # JNDI names ([jndi1, jndi2]name): not bound yet; the destination still counts.
        m = _JNDI_RE.match(text)
        if m is None:
            raise config_error(line.path, line.number, None, "missing ']' after JNDI names")
        text = text[m.end() :]
    parts = text.split(None, 1)
    if not parts:
        raise config_error(line.path, line.number, None, "missing destination name")
    name = parts[0]
    if "@" in name:
        warnings.append(f"{line.where}: routed {kind} {name!r} is not supported yet; ignored")
        return None
    try:
        validate_destination_name(name, wildcards=True)
    except InvalidError as exc:
        raise config_error(line.path, line.number, None, str(exc)) from None
    values: dict[str, Any] = {}
    try:
        props = split_list(parts[1]) if len(parts) > 1 else []
    except ValueError as exc:
        raise config_error(line.path, line.number, None, str(exc)) from None
    for prop in props:
        _parse_prop(prop, line, kind, values, warnings)
    return DestinationEntry(name, line.path, line.number, line.raw, **values)


def _parse_prop(
    prop: str, line: Line, kind: Kind, values: dict[str, Any], warnings: list[str]
) -> None:
    key, eq, raw_value = prop.partition("=")
    key = key.strip()
    spec = _PROPS.get(key.lower())
    if spec is None:
        warnings.append(f"{line.where}: unknown property {key!r}")
        return
    ems_name, field_name, parser = spec

    def fail(problem: str) -> ConfigError:
        return config_error(line.path, line.number, ems_name, problem)

    if kind == "topic" and ems_name in _QUEUE_ONLY:
        raise fail("not allowed on topics")
    try:
        value_text = unquote(raw_value.strip())
    except ValueError as exc:
        raise fail(str(exc)) from None
    value: object
    if ems_name == "trace":
        if eq and value_text.lower() != "body":
            raise fail(f"expected trace or trace=body, got {prop!r}")
        value = "body" if eq else "default"
    elif parser is None:
        if eq:
            raise fail(f"is a flag and takes no value, got {prop!r}")
        value = FAILSAFE_STORE if ems_name == "failsafe" else True
    else:
        if not eq:
            raise fail(f"expected {ems_name}=<value>")
        try:
            value = parser(value_text)
        except ValueError as exc:
            raise fail(str(exc)) from None
    if ems_name == "prefetch" and value == PREFETCH_NONE and kind == "topic":
        raise fail("prefetch=none is not allowed on topics")
    if field_name in values:
        if field_name == "store" and values[field_name] == value:
            return  # failsafe together with store=$sys.failsafe says the same thing
        raise fail(
            "set twice on one line"
            if field_name != "store"
            else "failsafe and store= name different stores"
        )
    values[field_name] = value


def _merge(
    kind: Kind, name: str, own: DestinationEntry | None, parents: list[DestinationEntry]
) -> DestinationProps:
    everyone = parents if own is None else [own, *parents]
    out: dict[str, Any] = {"static": own is not None}
    for flag in _FLAGS:
        out[flag] = any(getattr(e, flag) for e in everyone)  # inherited flags cannot be removed
    out["trace"] = max((e.trace for e in everyone), key=_TRACE_RANK.__getitem__, default=None)
    for limit in _LIMITS:
        mine = getattr(own, limit, None)
        if mine is not None:
            out[limit] = mine  # the child's own value overrides its parents
            continue
        given = [v for e in parents if (v := getattr(e, limit)) is not None]
        nonzero = [v for v in given if v > 0]
        out[limit] = min(nonzero) if nonzero else 0  # 0 = unlimited: the least strict
    if own is not None and own.overflow_policy is not None:
        out["overflow_policy"] = own.overflow_policy
    else:
        policies = [e.overflow_policy for e in parents if e.overflow_policy is not None]
        out["overflow_policy"] = max(
            policies, key=_OVERFLOW_RANK.__getitem__, default=OverflowPolicy.DEFAULT
        )
    out["prefetch"] = _merge_prefetch(kind, own, parents)
    out["store"] = _merge_store(name, own, parents)
    return DestinationProps(**out)


def _merge_prefetch(
    kind: Kind, own: DestinationEntry | None, parents: list[DestinationEntry]
) -> int:
    if own is not None and own.prefetch:
        return own.prefetch  # 0 means "inherit"
    given = [e.prefetch for e in parents if e.prefetch]
    positive = [v for v in given if v > 0]
    if positive:
        return max(positive)
    if given:
        return PREFETCH_NONE  # every parent that set prefetch said none
    return DEFAULT_PREFETCH[kind]


def _merge_store(name: str, own: DestinationEntry | None, parents: list[DestinationEntry]) -> str:
    if own is not None and own.store is not None:
        return own.store
    chosen: DestinationEntry | None = None
    for entry in parents:
        if entry.store is None:
            continue
        if chosen is None:
            chosen = entry
        elif entry.store != chosen.store:
            raise config_error(
                chosen.path,
                chosen.line,
                "store",
                f"{name!r} inherits conflicting stores: {chosen.store!r} from "
                f"{chosen.name!r} ({chosen.where}) and {entry.store!r} from "
                f"{entry.name!r} ({entry.where})",
            )
    return chosen.store if chosen is not None and chosen.store else DEFAULT_STORE
