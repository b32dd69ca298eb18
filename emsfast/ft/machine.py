"""The FT state machine (DESIGN.md §6, EMS.md 1.2-1.5): pure, table-driven.

Events in, actions out, the clock injected; no I/O. ``ft/runner.py`` performs
the actions and turns sockets, timers and the store lock into events.

The store lock and the epoch are the safety mechanism; heartbeats only decide
*when* to try. A standby activates when it acquires the lock (the active died:
the kernel freed the flock) or after ``ft_activation`` seconds of silence (the
active may be hung: it still holds the flock, so activation bumps the epoch
without it and the old active is fenced at its next commit or epoch check).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from emsfast.errors import EmsfastError


class FTError(EmsfastError):
    """An event the FT state machine does not accept in its current state."""


class FTState(enum.Enum):
    STARTING = "starting"
    STANDBY = "standby"
    ACTIVATING = "activating"
    ACTIVE = "active"
    STOPPED = "stopped"


# -- events -------------------------------------------------------------------------


@dataclass(frozen=True)
class PeerConnected:
    active: bool            # the peer answered as the active member


@dataclass(frozen=True)
class PeerLost:
    reason: str = ""        # the link broke, or the peer could not be reached


@dataclass(frozen=True)
class Heartbeat:
    pass


@dataclass(frozen=True)
class Tick:
    pass                    # the runner's timer: time to compare the clock


@dataclass(frozen=True)
class LockAcquired:
    pass


@dataclass(frozen=True)
class LockFailed:
    owner: str = ""


@dataclass(frozen=True)
class Activated:
    pass                    # recovery done, clients served


@dataclass(frozen=True)
class ActivationFailed:
    reason: str


@dataclass(frozen=True)
class Fenced:
    reason: str


@dataclass(frozen=True)
class Shutdown:
    pass


Event = (PeerConnected | PeerLost | Heartbeat | Tick | LockAcquired | LockFailed | Activated
         | ActivationFailed | Fenced | Shutdown)
EVENTS: tuple[type[Event], ...] = (PeerConnected, PeerLost, Heartbeat, Tick, LockAcquired,
                                   LockFailed, Activated, ActivationFailed, Fenced, Shutdown)

# -- actions ------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectPeer:
    delay: float = 0.0      # seconds to wait first


@dataclass(frozen=True)
class TryLock:
    pass                    # non-blocking; answers LockAcquired or LockFailed


@dataclass(frozen=True)
class EnterStandby:
    pass                    # refuse clients, heartbeat the peer, wait on the lock


@dataclass(frozen=True)
class StartActivation:
    steal: bool             # True: the flock is held by a hung peer; fence it by epoch


@dataclass(frozen=True)
class StartReconnectClock:
    pass


@dataclass(frozen=True)
class Log:
    text: str
    level: str = "info"


@dataclass(frozen=True)
class Stop:
    exit_code: int


Action = (ConnectPeer | TryLock | EnterStandby | StartActivation | StartReconnectClock | Log
          | Stop)

# Seconds between start-up rounds when the peer is not active and the lock is
# taken (EMS waits "~10 s"; a shorter pause makes start-up races settle sooner).
RETRY_DELAY = 1.0
EXIT_FENCED = 3


class FTMachine:
    def __init__(self, peer_url: str, heartbeat: float, activation: float,
                 clock: Callable[[], float]) -> None:
        self.peer_url = peer_url
        self.heartbeat = heartbeat
        self.activation = activation
        self.clock = clock
        self.state = FTState.STARTING
        self.last_heartbeat = clock()
        self.retries = 0            # start-up rounds lost to a locked store

    def handle(self, event: Event) -> list[Action]:
        step = _TRANSITIONS.get((self.state, type(event)))
        if step is None:
            raise FTError(f"FT event {type(event).__name__} is not valid in state "
                          f"{self.state.value}")
        return step(self, event)

    # -- helpers ----------------------------------------------------------------------

    def _heard(self) -> None:
        self.last_heartbeat = self.clock()

    def _activate(self, why: str, steal: bool) -> list[Action]:
        self.state = FTState.ACTIVATING
        return [Log(why, "warning"),
                Log(f"Server activating on failure of '{self.peer_url}'."),
                StartActivation(steal)]

    def _stop(self, code: int, why: str | None = None) -> list[Action]:
        self.state = FTState.STOPPED
        out: list[Action] = [] if why is None else [Log(why, "error")]
        return out + [Stop(code)]

    # -- STARTING ---------------------------------------------------------------------

    def _starting_peer(self, ev: Event) -> list[Action]:
        assert isinstance(ev, PeerConnected)
        if not ev.active:
            return [TryLock()]      # the peer is starting or standby: the lock decides
        self.state = FTState.STANDBY
        self._heard()
        return [EnterStandby(),
                Log(f"Server is in standby mode for '{self.peer_url}'.")]

    def _starting_lost(self, ev: Event) -> list[Action]:
        return [TryLock()]

    def _starting_locked(self, ev: Event) -> list[Action]:
        self.state = FTState.ACTIVATING
        return [StartActivation(steal=False)]

    def _starting_lock_failed(self, ev: Event) -> list[Action]:
        assert isinstance(ev, LockFailed)
        retry: list[Action] = [ConnectPeer(RETRY_DELAY)]
        if self.retries:
            self.retries += 1
            return retry        # said once; a retry every second must not flood the log
        self.retries = 1
        return [Log(f"Store is locked by {ev.owner or 'another server'} and the peer "
                    f"'{self.peer_url}' is not active; retrying.", "warning")] + retry

    # -- STANDBY ----------------------------------------------------------------------

    def _standby_peer(self, ev: Event) -> list[Action]:
        assert isinstance(ev, PeerConnected)
        if ev.active:
            self._heard()
        return []   # a peer that is not active sends no heartbeats: the timer decides

    def _standby_lost(self, ev: Event) -> list[Action]:
        # The link broke: reconnect; the lock (death) or the timer (hang) activates.
        assert isinstance(ev, PeerLost)
        retry: list[Action] = [ConnectPeer(min(self.heartbeat, RETRY_DELAY))]
        if not ev.reason:
            return retry    # a failed reconnect attempt: said when the link broke
        return [Log(f"Lost the link to the active server '{self.peer_url}': {ev.reason}.",
                    "warning")] + retry

    def _standby_heartbeat(self, ev: Event) -> list[Action]:
        self._heard()
        return []

    def _standby_tick(self, ev: Event) -> list[Action]:
        if self.clock() - self.last_heartbeat < self.activation:
            return []
        return self._activate(f"Missing heartbeats from primary server '{self.peer_url}'.",
                              steal=True)

    def _standby_locked(self, ev: Event) -> list[Action]:
        return self._activate(f"Store lock released by the active server '{self.peer_url}'.",
                              steal=False)

    # -- ACTIVATING -------------------------------------------------------------------

    def _activated(self, ev: Event) -> list[Action]:
        self.state = FTState.ACTIVE
        return [Log("Server is active."), StartReconnectClock()]

    def _activation_failed(self, ev: Event) -> list[Action]:
        assert isinstance(ev, ActivationFailed)
        self.state = FTState.STANDBY
        self._heard()
        return [Log(ev.reason, "error"), Log("Server failed to recover state.", "error"),
                Log("Server is re-entering standby mode."), EnterStandby(),
                ConnectPeer(RETRY_DELAY)]

    # -- any state --------------------------------------------------------------------

    def _ignore(self, ev: Event) -> list[Action]:
        return []

    def _fenced(self, ev: Event) -> list[Action]:
        assert isinstance(ev, Fenced)
        return self._stop(EXIT_FENCED, f"{ev.reason}. Server is fenced and stops.")

    def _shutdown(self, ev: Event) -> list[Action]:
        return self._stop(0)


_Step = Callable[[FTMachine, Event], list[Action]]
S = FTState
M = FTMachine

_TRANSITIONS: dict[tuple[FTState, type[Event]], _Step] = {
    (S.STARTING, PeerConnected): M._starting_peer,
    (S.STARTING, PeerLost): M._starting_lost,
    (S.STARTING, Heartbeat): M._ignore,
    (S.STARTING, Tick): M._ignore,
    (S.STARTING, LockAcquired): M._starting_locked,
    (S.STARTING, LockFailed): M._starting_lock_failed,
    (S.STARTING, Shutdown): M._shutdown,

    (S.STANDBY, PeerConnected): M._standby_peer,
    (S.STANDBY, PeerLost): M._standby_lost,
    (S.STANDBY, Heartbeat): M._standby_heartbeat,
    (S.STANDBY, Tick): M._standby_tick,
    (S.STANDBY, LockAcquired): M._standby_locked,
    (S.STANDBY, Shutdown): M._shutdown,

    # The old link may still speak while the store is recovered: nothing changes.
    (S.ACTIVATING, PeerConnected): M._ignore,
    (S.ACTIVATING, PeerLost): M._ignore,
    (S.ACTIVATING, Heartbeat): M._ignore,
    (S.ACTIVATING, Tick): M._ignore,
    (S.ACTIVATING, LockAcquired): M._ignore,    # the waiter got the flock after a steal
    (S.ACTIVATING, Activated): M._activated,
    (S.ACTIVATING, ActivationFailed): M._activation_failed,
    (S.ACTIVATING, Fenced): M._fenced,
    (S.ACTIVATING, Shutdown): M._shutdown,

    (S.ACTIVE, PeerConnected): M._ignore,
    (S.ACTIVE, PeerLost): M._ignore,
    (S.ACTIVE, Heartbeat): M._ignore,
    (S.ACTIVE, Tick): M._ignore,
    (S.ACTIVE, LockAcquired): M._ignore,        # the flock follows a stolen activation
    (S.ACTIVE, Fenced): M._fenced,
    (S.ACTIVE, Shutdown): M._shutdown,
}
# Once stopped, late events from sockets and timers change nothing.
for _event in EVENTS:
    _TRANSITIONS[(S.STOPPED, _event)] = M._ignore
del _event
