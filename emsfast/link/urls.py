"""Server URL lists as EMS clients write them (EMS.md §2.1).

The grammar is the server's (``emsfast.config.urls``); this adds what a client
needs on top: a host to dial for ``tcp://7222``, no port 0, and a clear error for
forms it cannot use yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from emsfast.config.urls import parse_url_list as _parse_url_list
from emsfast.errors import InvalidError

__all__ = ["ServerUrl", "UnsupportedUrlError", "parse_url_groups", "parse_url_list"]


class UnsupportedUrlError(InvalidError, NotImplementedError):
    """A URL form emsfast parses but cannot use yet (ssl://, load-balanced lists)."""


@dataclass(frozen=True, slots=True)
class ServerUrl:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def parse_url_groups(text: str) -> list[list[ServerUrl]]:
    """``tcp://a1:7222,tcp://a2:7222+tcp://b1:7222`` (EMS.md 1.9): ``+`` separates
    independent servers (unshared state), ``,`` the members of one FT pair."""
    groups = [parse_url_list(group) for group in text.split("+")]
    if len({u.scheme for g in groups for u in g}) > 1:
        raise InvalidError(f"URL list {text!r} mixes tcp:// and ssl://")
    return groups


def parse_url_list(text: str) -> list[ServerUrl]:
    """Parse ``tcp://a:7222,tcp://b:7224`` (spaces after commas allowed).

    ``tcp://7222`` dials localhost; the port defaults to 7222.
    """
    if "|" in text:
        raise UnsupportedUrlError(f"load-balanced URL lists ('|') are not supported: {text!r}")
    if "+" in text:
        raise UnsupportedUrlError(f"server groups ('+') are not supported: {text!r}")
    urls = []
    for url in _parse_url_list(text):
        if url.port == 0:
            raise InvalidError(f"URL {text!r}: a client needs a real port, not 0")
        urls.append(ServerUrl(url.scheme, url.host or "localhost", url.port))
    if len({u.scheme for u in urls}) > 1:
        raise InvalidError(f"URL list {text!r} mixes tcp:// and ssl://")
    return urls
