"""Password hashing for users.conf and mangling for tibemsd.conf (EMS.md 1.10, 4.1).

users.conf stores ``$scrypt$<salt>$<hash>`` (salt and hash in unpadded
URL-safe base64: no ``:`` or ``$``, so the ``name:password:"desc"`` line stays
parseable). A value without a leading ``$`` is a hand-written plain-text password:
accepted when read, replaced by a hash on the next write-back. Hashing takes tens
of milliseconds on purpose, so callers on the event loop use the ``*_async`` forms.

The server's own ``password`` in tibemsd.conf must be presented to the FT peer, so
it cannot be hashed: ``set server password=`` writes it mangled (``$man$...``),
which hides it from a casual look and nothing more, as EMS does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os

SCHEME = "scrypt"
# 2**14 * 8 * 128 bytes = 16 MiB and ~50 ms per check: OpenSSL's default memory cap
# refuses 2**15 with r=8, and a login should not cost more than this.
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32
_SALT_BYTES = 16
_MANGLE_PREFIX = "$man$"
_MANGLE_KEY = b"emsfast-mangle-not-encryption"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scrypt(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "surrogateescape"), salt=salt, n=_N,
                          r=_R, p=_P, dklen=_DKLEN, maxmem=64 * 1024 * 1024)


def hash_password(password: str) -> str:
    """Salted slow hash of ``password``; an empty password stays empty (= none)."""
    if not password:
        return ""
    salt = os.urandom(_SALT_BYTES)
    return f"${SCHEME}${_b64(salt)}${_b64(_scrypt(password, salt))}"


def is_hashed(stored: str) -> bool:
    return stored.startswith(f"${SCHEME}$")


def needs_hashing(stored: str) -> bool:
    """A hand-written plain-text password, to be hashed on the next write-back."""
    return bool(stored) and not stored.startswith("$")


_DUMMY = f"${SCHEME}${_b64(b'0' * _SALT_BYTES)}${_b64(b'0' * _DKLEN)}"


def verify_password(stored: str | None, given: str | None) -> bool:
    """True if ``given`` matches ``stored``; ``stored`` None = unknown user.

    An unknown user still costs one hash, so timing does not tell whether the
    user exists. Comparisons are constant-time.
    """
    given = given or ""
    if stored is None:
        _scrypt(given, b"0" * _SALT_BYTES)
        hmac.compare_digest(_DUMMY, _DUMMY)
        return False
    if not stored:
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), b"")
    if stored.startswith("$"):
        parts = stored.split("$")
        if len(parts) != 4 or parts[1] != SCHEME:
            return False
        try:
            salt, digest = _unb64(parts[2]), _unb64(parts[3])
        except ValueError:
            return False
        return hmac.compare_digest(_scrypt(given, salt), digest)
    return hmac.compare_digest(stored.encode("utf-8", "surrogateescape"),
                               given.encode("utf-8", "surrogateescape"))


async def verify_password_async(stored: str | None, given: str | None) -> bool:
    """``verify_password`` on the default executor: never blocks the event loop."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, verify_password, stored, given)


async def hash_password_async(password: str) -> str:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, hash_password, password)


def mangle(password: str) -> str:
    """Obfuscate (not encrypt) a password for tibemsd.conf; empty stays empty."""
    if not password or password.startswith(_MANGLE_PREFIX):
        return password
    raw = password.encode("utf-8", "surrogateescape")
    key = _MANGLE_KEY * (len(raw) // len(_MANGLE_KEY) + 1)
    return _MANGLE_PREFIX + _b64(bytes(a ^ b for a, b in zip(raw, key, strict=False)))


def unmangle(text: str) -> str:
    """The clear password of a ``mangle``d value; other values are returned as they are."""
    if not text.startswith(_MANGLE_PREFIX):
        return text
    try:
        raw = _unb64(text[len(_MANGLE_PREFIX):])
    except ValueError:
        raise ValueError("mangled password is not valid base64") from None
    key = _MANGLE_KEY * (len(raw) // len(_MANGLE_KEY) + 1)
    return bytes(a ^ b for a, b in zip(raw, key, strict=False)).decode("utf-8", "surrogateescape")
