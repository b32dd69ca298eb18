"""EMS server URLs: ``tcp://host:port``, ``tcp://port``, ``ssl://[::1]:7243``.

Shared by the server (``listen``, ``ft_active``) and the client (URL lists:
``,`` separates members of one FT pair, ``+`` separates independent groups,
EMS.md 1.9, 2.1). Errors are ``InvalidError`` (a ``ValueError``) so config code
can wrap them with file and line, and clients can raise them as they are.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from emsfast.errors import InvalidError

DEFAULT_PORT = 7222
SCHEMES = frozenset({"tcp", "ssl"})

_HOST_RE = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.\-]*[A-Za-z0-9_])?")


@dataclass(frozen=True, slots=True)
class ListenURL:
    """A parsed URL; ``host`` is "" for "all interfaces" (``tcp://7222``)."""

    scheme: str
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme == "ssl"

    def __str__(self) -> str:
        if not self.host:
            return f"{self.scheme}://{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_url(text: str) -> ListenURL:
    """Parse one URL; a missing scheme means ``tcp``, a missing port 7222."""
    url = text.strip()
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "tcp", url
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidError(f"URL {text!r}: scheme must be tcp or ssl")
    if not rest:
        raise InvalidError(f"URL {text!r}: missing host or port")
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket:
            raise InvalidError(f"URL {text!r}: missing ']' after IPv6 address")
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])  # a zone id (%eth0) is allowed
        except ValueError:
            raise InvalidError(f"URL {text!r}: bad IPv6 address {host!r}") from None
        if tail and not tail.startswith(":"):
            raise InvalidError(f"URL {text!r}: expected ':port' after ']'")
        port_text = tail[1:] if tail else ""
        if tail and not port_text:
            raise InvalidError(f"URL {text!r}: missing port after ':'")
    elif rest.count(":") > 1:
        raise InvalidError(f"URL {text!r}: IPv6 addresses must be in brackets")
    elif ":" in rest:
        host, _, port_text = rest.partition(":")
        if not host or not port_text:
            raise InvalidError(f"URL {text!r}: expected host:port")
    elif _digits(rest):
        host, port_text = "", rest  # tcp://7222: EMS reads a bare number as a port
    else:
        host, port_text = rest, ""
    if host and not rest.startswith("[") and _HOST_RE.fullmatch(host) is None:
        raise InvalidError(f"URL {text!r}: bad host name {host!r}")
    return ListenURL(scheme, host, _port(text, port_text))


def parse_url_list(text: str) -> list[ListenURL]:
    """``tcp://a:7222,tcp://b:7224``: the members of one FT pair, in order."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise InvalidError(f"URL list {text!r}: empty URL")
    return [parse_url(p) for p in parts]


def parse_url_groups(text: str) -> list[list[ListenURL]]:
    """``a,b+c``: ``+`` separates independent (unshared-state) server groups."""
    return [parse_url_list(group) for group in text.split("+")]


def _port(text: str, port_text: str) -> int:
    if not port_text:
        return DEFAULT_PORT
    if not _digits(port_text) or int(port_text) > 65535:
        raise InvalidError(f"URL {text!r}: port must be 0..65535, got {port_text!r}")
    return int(port_text)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()
