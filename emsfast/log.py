"""EMS-style log lines: ``2026-11-25 10:00:00.123 Server is active.``

Errors are prefixed ``ERROR: ``, warnings ``WARNING: ``, per-client lines
``[user@host]: ``. Only Python logs; the native core counts and raises.
"""

from __future__ import annotations

import logging
import os
import sys
import time

LOGGER_NAME = "emsfast"
log = logging.getLogger(LOGGER_NAME)

# EMS.md 3.3: DEFAULT = INFO, WARNING, ACL, LIMITS, ROUTE, ADMIN, CONNECT_ERROR, CONFIG, MSG.
TRACE_ITEMS = frozenset(
    "ACL ADMIN AUTH CONFIG CONNECT CONNECT_ERROR DEST FLOW INFO LIMITS MSG PRODCONS ROUTE SSL "
    "TX WARNING".split()
)
DEFAULT_TRACE = frozenset(
    "INFO WARNING ACL LIMITS ROUTE ADMIN CONNECT_ERROR CONFIG MSG".split()
)


class EmsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        if record.levelno >= logging.ERROR:
            prefix = "ERROR: "
        elif record.levelno >= logging.WARNING:
            prefix = "WARNING: "
        else:
            prefix = ""
        text = f"{stamp}.{int(record.msecs):03d} {prefix}{record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def parse_trace(spec: str | None, base: frozenset[str] = DEFAULT_TRACE) -> frozenset[str]:
    """Apply an EMS trace spec (``DEFAULT,+CONNECT,-MSG``) to ``base``.

    Raises ValueError naming an unknown item.
    """
    if not spec:
        return base
    items = set(base)
    for raw in spec.replace(" ", "").split(","):
        if not raw:
            continue
        op, name = (raw[0], raw[1:]) if raw[0] in "+-" else ("=", raw)
        name = name.upper()
        if name == "DEFAULT":
            group = set(DEFAULT_TRACE)
        elif name == "ALL":
            group = set(TRACE_ITEMS)
        elif name in TRACE_ITEMS:
            group = {name}
        else:
            raise ValueError(f"unknown trace item '{name}'")
        if op == "-":
            items -= group
        else:
            items |= group
    return frozenset(items)


class Tracer:
    """Which trace items are on; checked before building per-event log text."""

    def __init__(self, items: frozenset[str] = DEFAULT_TRACE) -> None:
        self.items = items

    def __contains__(self, item: str) -> bool:
        return item in self.items


class RotatingLogHandler(logging.FileHandler):
    """``logfile_max_size`` as EMS does it: a full log is renamed to the next free
    ``<logfile>.N`` (``.1``, ``.2``, ...; the highest is the newest, none is deleted)
    and the fresh file starts with ``Log file saved as '<logfile>.N'.``."""

    def __init__(self, path: str, max_size: int) -> None:
        super().__init__(path, encoding="utf-8")
        self.max_size = max_size

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        try:
            if self.stream is not None and self.stream.tell() >= self.max_size:
                self._rotate()
        except OSError:
            self.handleError(record)

    def _rotate(self) -> None:
        n = 1
        while os.path.exists(f"{self.baseFilename}.{n}"):
            n += 1
        saved = f"{self.baseFilename}.{n}"
        assert self.stream is not None
        self.stream.close()
        os.rename(self.baseFilename, saved)
        self.stream = self._open()
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        self.stream.write(f"{stamp}.{int(now * 1000) % 1000:03d} Log file saved as '{saved}'.\n")
        self.stream.flush()


def setup_logging(logfile: str | None, console: bool = True, max_size: int = 0) -> None:
    """Send emsfast's log to stderr and, when set, to ``logfile`` (appending);
    ``max_size`` > 0 rotates the file (``logfile_max_size``)."""
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = EmsFormatter()
    if console:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(fmt)
        log.addHandler(handler)
    if logfile:
        fh = (RotatingLogHandler(logfile, max_size) if max_size > 0
              else logging.FileHandler(logfile, encoding="utf-8"))
        fh.setFormatter(fmt)
        log.addHandler(fh)
