"""One exception hierarchy for server, client and tools.

Every error that crosses the wire carries a numeric code (``ErrorCode``) so the
peer can raise the same class; ``error_from_code`` maps back.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Wire error codes (REFUSED, ERROR and SEND_FAIL frames)."""

    PROTOCOL = 1          # malformed frame, unknown type, bad state
    VERSION = 2           # protocol version not supported
    AUTH = 3              # bad user or password
    STANDBY = 4           # server is the FT standby; try the next URL
    LIMIT = 5             # max_connections, max_msg_size, destination limits
    NOT_FOUND = 6         # destination, durable, session or consumer unknown
    NOT_ALLOWED = 7       # destination cannot be created, permission denied
    INVALID = 8           # bad argument: selector, destination name, ack mode
    STORE = 9             # store failed to persist
    INTERNAL = 10         # bug in the server; the connection is closed
    IN_USE = 11           # durable or client id already in use
    TX_ROLLED_BACK = 12   # commit could not complete


class EmsfastError(Exception):
    """Root of every error emsfast raises on purpose."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ConfigError(EmsfastError, ValueError):
    """A configuration file or option is wrong; the message names file and line.

    ``path``/``line``/``key`` repeat the location for callers that act on it
    (exit codes, admin replies); any of them may be None.
    """

    code = ErrorCode.INVALID

    def __init__(
        self,
        message: str,
        code: ErrorCode | None = None,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message, code)
        self.path = path
        self.line = line
        self.key = key


class ProtocolError(EmsfastError):
    """The peer broke the wire protocol; the connection is closed."""

    code = ErrorCode.PROTOCOL


class FrameError(ProtocolError, ValueError):
    """A frame could not be decoded (bad length, truncated, unknown type)."""


class FrameSizeError(FrameError):
    """A frame header claims more bytes than the decoder's limit allows.

    ``size`` and ``limit`` let the server name the parameter behind the limit.
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes exceeds limit of {limit}")
        self.size = size
        self.limit = limit


class VersionError(ProtocolError):
    code = ErrorCode.VERSION


class AuthError(EmsfastError, PermissionError):
    code = ErrorCode.AUTH


class StandbyError(EmsfastError, ConnectionError):
    """The server is an FT standby and refuses clients."""

    code = ErrorCode.STANDBY


class LimitError(EmsfastError):
    """A configured limit was hit (message size, connections, destination bytes)."""

    code = ErrorCode.LIMIT


class NotFoundError(EmsfastError, LookupError):
    code = ErrorCode.NOT_FOUND


class NotAllowedError(EmsfastError, PermissionError):
    code = ErrorCode.NOT_ALLOWED


class InvalidError(EmsfastError, ValueError):
    code = ErrorCode.INVALID


class SelectorError(InvalidError):
    """A message selector does not parse."""


class InUseError(EmsfastError):
    code = ErrorCode.IN_USE


class StoreError(EmsfastError):
    code = ErrorCode.STORE


class StoreLockedError(StoreError):
    """Another live server holds the store lock (emsfastd exits 3)."""


class FencedError(StoreError):
    """Another server took over the store (the epoch moved); stop writing (exit 3)."""


class FTError(EmsfastError):
    pass


class TransactionRolledBackError(EmsfastError):
    code = ErrorCode.TX_ROLLED_BACK


class InternalServerError(EmsfastError):
    code = ErrorCode.INTERNAL


class ConnectionClosedError(EmsfastError, ConnectionError):
    """The connection to the server is gone (client side)."""


_BY_CODE: dict[int, type[EmsfastError]] = {
    ErrorCode.PROTOCOL: ProtocolError,
    ErrorCode.VERSION: VersionError,
    ErrorCode.AUTH: AuthError,
    ErrorCode.STANDBY: StandbyError,
    ErrorCode.LIMIT: LimitError,
    ErrorCode.NOT_FOUND: NotFoundError,
    ErrorCode.NOT_ALLOWED: NotAllowedError,
    ErrorCode.INVALID: InvalidError,
    ErrorCode.STORE: StoreError,
    ErrorCode.INTERNAL: InternalServerError,
    ErrorCode.IN_USE: InUseError,
    ErrorCode.TX_ROLLED_BACK: TransactionRolledBackError,
}


def error_from_code(code: int, text: str) -> EmsfastError:
    """Rebuild the exception a peer reported with ``code``."""
    cls = _BY_CODE.get(code, EmsfastError)
    err = cls(text)
    if cls is EmsfastError:
        err.code = ErrorCode.INTERNAL
    return err
