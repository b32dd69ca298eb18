"""Performs the FT machine's actions (DESIGN.md §6): peer link, timers, store lock.

Everything runs on the server's loop except the lock waiter, a daemon thread
blocked in ``flock`` while this member is standby: the kernel wakes it the moment
the active dies, so failover on process death does not wait for heartbeats.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import TYPE_CHECKING

from emsfast.errors import EmsfastError, ProtocolError
from emsfast.ft.digest import config_digest, describe, digest_differences
from emsfast.ft.lock import FileStoreLock, InMemoryStoreLock, StoreLock
from emsfast.ft.machine import (
    Action,
    Activated,
    ActivationFailed,
    ConnectPeer,
    EnterStandby,
    Event,
    Fenced,
    FTMachine,
    FTState,
    Heartbeat,
    LockAcquired,
    LockFailed,
    Log,
    PeerConnected,
    PeerLost,
    Shutdown,
    StartActivation,
    StartReconnectClock,
    Stop,
    Tick,
    TryLock,
)
from emsfast.ft.peer import PeerLink, peer_hello, store_mismatch
from emsfast.link.urls import ServerUrl
from emsfast.log import log
from emsfast.server.tls import check_ft_tls, ft_client_context

if TYPE_CHECKING:
    from emsfast.server.server import Server

# How often the silence is measured; activation happens within this of ft_activation.
_TICK = 0.1
# After stealing the store (epoch bump) from an active that may still run, wait this
# long before serving: several ticks, in which a running old active reads the new
# epoch and fences itself (a hung one serves nothing and fences when it wakes).
STEAL_GRACE = 5 * _TICK


def store_lock(server: Server) -> StoreLock:
    lock = getattr(server.store, "lock", None)
    if isinstance(lock, FileStoreLock | InMemoryStoreLock):
        return lock
    return InMemoryStoreLock(server.config.store)     # a MemoryStore in tests


def _report(task: asyncio.Task[None]) -> None:
    # A bug in the runner must be seen, not left in a finished task.
    if not task.cancelled() and task.exception() is not None:
        log.error("FT runner failed", exc_info=task.exception())


class FTRunner:
    def __init__(self, server: Server) -> None:
        self.server = server
        config = server.config
        self.loop = server.loop
        first = config.ft_active_urls[0]
        self.peer = ServerUrl(first.scheme, first.host or "localhost", first.port)
        # Built once at start: a bad ft_ssl_* file is a configuration error (exit 1).
        self._tls = ft_client_context(config) if first.tls else None
        for warning in check_ft_tls(config):
            log.warning(warning)
        self.machine = FTMachine(str(self.peer), config.ft_heartbeat, config.ft_activation,
                                 time.monotonic)
        self.lock = store_lock(server)
        self._link: PeerLink | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._activation: asyncio.Task[None] | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._waiter: threading.Thread | None = None
        self._last_refusal = ""
        self._last_store_error = ""
        self._last_digest_error = ""
        self.reconnect_deadline: float | None = None
        self._was_standby = False       # activation after standby is a failover

    # -- public -------------------------------------------------------------------------

    def start(self) -> None:
        self._publish_state()
        self._tick()
        self._perform([ConnectPeer()])

    def dispatch(self, event: Event) -> None:
        if self.machine.state is FTState.STOPPED and not isinstance(event, Shutdown):
            return
        actions = self.machine.handle(event)
        self._publish_state()
        self._perform(actions)

    def fenced(self, reason: str) -> None:
        self.dispatch(Fenced(reason))

    def stop(self) -> None:
        if self.machine.state is not FTState.STOPPED:
            self.machine.handle(Shutdown())
        if self._ticker is not None:
            self._ticker.cancel()
        for task in (self._connecting, self._activation):
            if task is not None:
                task.cancel()
        self._close_link()

    @property
    def state(self) -> FTState:
        return self.machine.state

    # -- plumbing -----------------------------------------------------------------------

    def _publish_state(self) -> None:
        # admin `info`, /isReady and /metrics read server.ft_state.
        state = self.machine.state
        self.server.ft_state = "activating" if state is FTState.ACTIVATING else state.value

    def _tick(self) -> None:
        self._ticker = self.loop.call_later(_TICK, self._tick)
        self.dispatch(Tick())
        if self.machine.state is FTState.ACTIVE:
            # An idle active learns it was replaced (it hung, or the FT link broke and
            # the peer took over by epoch) without waiting for its next write: every
            # tick, one read of the epoch. A successor that stole the store waits
            # STEAL_GRACE before serving, so by then this one has fenced itself.
            check = getattr(self.server.store, "check_epoch", None)
            if check is not None:
                check()

    def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Log):
                getattr(log, action.level)(action.text)
            elif isinstance(action, ConnectPeer):
                self._connect(action.delay)
            elif isinstance(action, TryLock):
                self._try_lock()
            elif isinstance(action, EnterStandby):
                self._was_standby = True
                self._start_waiter()
            elif isinstance(action, StartActivation):
                self._close_link()
                self._activation = self.loop.create_task(self._activate(action.steal))
                self._activation.add_done_callback(_report)
            elif isinstance(action, StartReconnectClock):
                self._reconnect_clock()
            elif isinstance(action, Stop):
                self.server.exit_code = max(self.server.exit_code, action.exit_code)
                self.server.shutdown.set()

    # -- peer link ----------------------------------------------------------------------

    def _close_link(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            link.close()

    def _connect(self, delay: float) -> None:
        # One attempt at a time; an attempt that ends by asking for the next one
        # (dispatch runs inside it) must still get it.
        current = self._connecting
        if (current is not None and not current.done()
                and current is not asyncio.current_task()):
            return
        self._connecting = self.loop.create_task(self._connect_peer(delay))
        self._connecting.add_done_callback(_report)

    async def _connect_peer(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        if self.machine.state not in (FTState.STARTING, FTState.STANDBY):
            return
        config = self.server.config
        link = PeerLink(self.loop, self.peer, peer_hello(config), config.ft_heartbeat,
                        self._heard, self._lost, tls=self._tls,
                        server_hostname=config.ft_ssl_expected_hostname or self.peer.host)
        try:
            state = await link.connect(timeout=max(config.ft_heartbeat, 1.0))
        except (OSError, TimeoutError, EmsfastError) as exc:
            self._report_refusal(exc)
            # Only a broken link is news to a standby, not each failed retry.
            standby = self.machine.state is FTState.STANDBY
            self.dispatch(PeerLost("" if standby else str(exc) or type(exc).__name__))
            return
        self._last_refusal = ""
        why = store_mismatch(config, str(self.peer), link.welcome.get("store_id"))
        if why is not None and why != self._last_store_error:
            log.error(why)
        self._last_store_error = why or ""
        differ = digest_differences(config_digest(config), link.welcome.get("digest"))
        text = describe(differ, f"'{self.peer}'") if differ else ""
        if text and text != self._last_digest_error:
            log.error(text)
        self._last_digest_error = text
        if state == "active":
            self._close_link()
            self._link = link
            log.info(f"Connected to the active FT peer '{self.peer}'.")
        self.dispatch(PeerConnected(active=state == "active"))

    def _report_refusal(self, exc: BaseException) -> None:
        # A peer that answers and refuses (wrong password, other server name, not
        # emsfast) is a configuration problem: say so, once per distinct reason.
        if isinstance(exc, ProtocolError):
            text = (f"FT peer '{self.peer}' refused the link: it does not speak the emsfast "
                    f"protocol (not an emsfast server?): {exc}")
        elif isinstance(exc, EmsfastError):
            text = f"FT peer '{self.peer}' refused the link: {exc}"
        else:
            return
        if text != self._last_refusal:
            log.error(text)
            self._last_refusal = text

    def _heard(self) -> None:
        self.dispatch(Heartbeat())

    def _lost(self, reason: str) -> None:
        self._link = None
        self.dispatch(PeerLost(reason))

    # -- lock and activation ------------------------------------------------------------

    def _try_lock(self) -> None:
        try:
            # The store directory may not exist before the first activation.
            os.makedirs(os.path.dirname(self.lock.path), exist_ok=True)
            got = self.lock.try_acquire()
        except OSError as exc:
            log.error(f"Unable to lock the store '{self.lock.path}': {exc}")
            got = False
        if got:
            self.dispatch(LockAcquired())
        else:
            self.dispatch(LockFailed(self.lock.owner()))

    def _start_waiter(self) -> None:
        if self._waiter is not None and self._waiter.is_alive():
            return

        def wait() -> None:
            try:
                os.makedirs(os.path.dirname(self.lock.path), exist_ok=True)
                self.lock.wait_blocking()
            except OSError as exc:
                log.error(f"Waiting for the store lock '{self.lock.path}' failed: {exc}")
                return
            try:
                self.loop.call_soon_threadsafe(self.dispatch, LockAcquired())
            except RuntimeError:
                pass    # loop closed: the server is gone

        self._waiter = threading.Thread(target=wait, name="emsfast-ft-lock", daemon=True)
        self._waiter.start()

    async def _activate(self, steal: bool) -> None:
        try:
            await self.server.activate(steal, failover=self._was_standby)
        except asyncio.CancelledError:
            raise
        except Exception as exc:    # report it, go back to standby; never half-active
            self.dispatch(ActivationFailed(str(exc)))
            return
        self.dispatch(Activated())

    def _reconnect_clock(self) -> None:
        timeout = self.server.config.ft_reconnect_timeout
        self.reconnect_deadline = time.monotonic() + timeout
        self.loop.call_later(timeout, self.server.reconnect_expired)
