"""Digests of the configuration a pair must share but does not store together
(EMS.md 1.9): destinations, routes, users/groups/ACL, TLS certificates.

Each section is the SHA-256 of its files' meaningful lines (comments, blank lines
and surrounding blanks dropped; sorted, so reordering is not a difference). FT
peers exchange them on link set-up and each side logs an FT configuration error
naming every section that differs.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emsfast.config.tibemsd import TibemsdConfig

# section -> the tibemsd.conf parameters naming its files
SECTIONS: dict[str, tuple[str, ...]] = {
    "destinations": ("queues", "topics", "durables"),
    "routes": ("routes",),
    "users": ("users",),
    "groups": ("groups",),
    "acl": ("acl_list",),
    "certificates": ("ssl_server_identity", "ssl_server_issuer", "ssl_server_trusted"),
}


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return [f"<absent {path.rsplit('/', 1)[-1]}>"]
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            out.append(" ".join(line.split()))
    return out


def _certificate(path: str) -> list[str]:
    # Certificates are compared by their bytes (a fingerprint), not by lines.
    try:
        with open(path, "rb") as f:
            return [hashlib.sha256(f.read()).hexdigest()]
    except OSError:
        return [f"<absent {path.rsplit('/', 1)[-1]}>"]


def config_digest(config: TibemsdConfig) -> dict[str, str]:
    digest: dict[str, str] = {}
    for section, params in SECTIONS.items():
        lines: list[str] = []
        for param in params:
            value = getattr(config, param, "")
            paths = value if isinstance(value, list) else [value] if value else []
            for path in paths:
                lines += (_certificate(path) if section == "certificates"
                          else [f"{param}:{line}" for line in _lines(path)])
        digest[section] = hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
    return digest


def digest_differences(mine: dict[str, str], theirs: object) -> list[str]:
    """The sections whose digests differ (empty when the peer sent none)."""
    if not isinstance(theirs, dict):
        return []
    return [section for section in SECTIONS
            if section in theirs and theirs[section] != mine.get(section)]


def describe(differences: list[str], peer: str) -> str:
    files = {s: ", ".join(SECTIONS[s]) for s in differences}
    listing = "; ".join(f"{s} ({files[s]})" for s in differences)
    return (f"FT configuration error: this server and its peer {peer} differ in {listing}; "
            "both members must have the same configuration (EMS.md 1.9)")
