"""Authorization hooks of the server: login at HELLO, ACLs at producer/consumer creation.

Policy runs on control frames only, never per message (STYLE.md). Password
checks run on an executor. Failed logins from one address within a minute are
answered ever more slowly, so guessing passwords from one host stays slow.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from emsfast.auth.passwords import verify_password_async
from emsfast.auth.state import SecurityState
from emsfast.config.tibemsd import TibemsdConfig
from emsfast.errors import AuthError, NotAllowedError
from emsfast.log import log

if TYPE_CHECKING:
    from emsfast.server.connection import ClientConnection

# The same text for an unknown user and a wrong password: never reveal which.
LOGIN_FAILED = "invalid user name or password"
_FAILURE_WINDOW = 60.0      # seconds a failure is remembered
_FREE_FAILURES = 3          # failures answered at once; slower from the fourth
_FIRST_DELAY = 0.5
_MAX_DELAY = 2.0            # below a client's default 3 s handshake timeout
_MAX_TRACKED = 10_000       # addresses remembered; strangers cannot grow this forever


class Authz:
    def __init__(self, config: TibemsdConfig) -> None:
        self.enabled = config.authorization
        self.state = SecurityState(config)
        self._failures: dict[str, tuple[int, float]] = {}

    @property
    def warnings(self) -> list[str]:
        return self.state.warnings

    # -- login -------------------------------------------------------------------

    def _recent_failures(self, host: str) -> int:
        count, last = self._failures.get(host, (0, 0.0))
        if time.monotonic() - last > _FAILURE_WINDOW:
            return 0
        return count

    def _delay(self, failures: int) -> float:
        if failures <= _FREE_FAILURES:
            return 0.0
        return float(min(_FIRST_DELAY * 2 ** (failures - _FREE_FAILURES - 1), _MAX_DELAY))

    async def login(self, user: str, password: str | None, host: str) -> None:
        """Raise ``AuthError`` unless ``user``/``password`` may connect.

        ``anonymous`` connects only if users.conf holds it without a password.
        """
        failures = self._recent_failures(host)
        stored = self.state.stored_password(user)
        if await verify_password_async(stored, password):
            return
        failures += 1
        if len(self._failures) >= _MAX_TRACKED and host not in self._failures:
            self._failures.pop(next(iter(self._failures)))
        self._failures[host] = (failures, time.monotonic())
        await asyncio.sleep(self._delay(failures))
        raise AuthError(f"authentication failed: {LOGIN_FAILED}")

    def check_cert_user(self, user: str) -> None:
        """A certificate's CN logs in without a password, but must be a known user."""
        if self.state.stored_password(user) is None:
            raise AuthError(f"authentication failed: certificate user '{user}' is not "
                            "defined in users.conf")

    # -- destination rights ------------------------------------------------------

    def _secure(self, conn: ClientConnection, kind: str, name: str) -> bool:
        table = conn.broker.queue_table if kind == "queue" else conn.broker.topic_table
        try:
            props = table.resolve(name)
        except Exception:
            return False  # the create path reports the real problem
        return props is not None and props.secure

    def _require(self, conn: ClientConnection, kind: str, name: str, perms: tuple[str, ...],
                 action: str) -> None:
        acl = self.state.acl
        if any(acl.allowed(conn.user, kind, name, p) for p in perms):
            return
        text = (f"user '{conn.user}' is not allowed to {action} {kind} '{name}' "
                f"(needs the {' or '.join(perms)} permission)")
        if "ACL" in conn.server.tracer:
            log.warning(f"[{conn.user}@{conn.host}]: {text}")
        raise NotAllowedError(text)

    def check_producer(self, conn: ClientConnection, kind: str, name: str) -> None:
        if not self.enabled or not self._secure(conn, kind, name):
            return
        if kind == "queue":
            self._require(conn, kind, name, ("send",), "send to")
        else:
            self._require(conn, kind, name, ("publish",), "publish to")

    def check_consumer(self, conn: ClientConnection, kind: str, name: str,
                       durable: str | None) -> None:
        if not self.enabled or not self._secure(conn, kind, name):
            return
        if kind == "queue":
            self._require(conn, kind, name, ("receive",), "receive from")
        elif durable is None:
            self._require(conn, kind, name, ("subscribe",), "subscribe to")
        else:
            existing = conn.broker.durables.get(conn.durable_key(durable))
            if existing is not None and existing.topic_pattern == name:
                self._require(conn, kind, name, ("durable", "use_durable"),
                              "use a durable subscription on")
            else:
                self._require(conn, kind, name, ("durable",),
                              "create a durable subscription on")

    def check_browser(self, conn: ClientConnection, name: str) -> None:
        if self.enabled and self._secure(conn, "queue", name):
            self._require(conn, "queue", name, ("browse",), "browse")
