"""The FT state machine: every (state, event) pair, with an injected clock."""

from __future__ import annotations

import pytest

from emsfast.ft.machine import (
    EVENTS,
    Action,
    Activated,
    ActivationFailed,
    ConnectPeer,
    EnterStandby,
    Event,
    Fenced,
    FTError,
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

PEER = "tcp://localhost:7222"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def machine(state: FTState, clock: Clock | None = None) -> FTMachine:
    m = FTMachine(PEER, heartbeat=1.0, activation=3.0, clock=clock or Clock())
    m.state = state
    return m


def sample(kind: type[Event]) -> Event:
    samples: dict[type[Event], Event] = {
        PeerConnected: PeerConnected(active=True), PeerLost: PeerLost("reset"),
        Heartbeat: Heartbeat(), Tick: Tick(), LockAcquired: LockAcquired(),
        LockFailed: LockFailed("pid 1"), Activated: Activated(),
        ActivationFailed: ActivationFailed("store locked"), Fenced: Fenced("epoch moved"),
        Shutdown: Shutdown(),
    }
    return samples[kind]


def logs(actions: list[Action]) -> list[str]:
    return [a.text for a in actions if isinstance(a, Log)]


def plain(actions: list[Action]) -> list[Action]:
    return [a for a in actions if not isinstance(a, Log)]


# (state, event) -> (next state, actions other than Log); None: illegal (raises).
S = FTState
EXPECTED: dict[tuple[FTState, type[Event]], tuple[FTState, list[Action]] | None] = {
    (S.STARTING, PeerConnected): (S.STANDBY, [EnterStandby()]),
    (S.STARTING, PeerLost): (S.STARTING, [TryLock()]),
    (S.STARTING, Heartbeat): (S.STARTING, []),
    (S.STARTING, Tick): (S.STARTING, []),
    (S.STARTING, LockAcquired): (S.ACTIVATING, [StartActivation(steal=False)]),
    (S.STARTING, LockFailed): (S.STARTING, [ConnectPeer(1.0)]),
    (S.STARTING, Activated): None,
    (S.STARTING, ActivationFailed): None,
    (S.STARTING, Fenced): None,
    (S.STARTING, Shutdown): (S.STOPPED, [Stop(0)]),

    (S.STANDBY, PeerConnected): (S.STANDBY, []),
    (S.STANDBY, PeerLost): (S.STANDBY, [ConnectPeer(1.0)]),
    (S.STANDBY, Heartbeat): (S.STANDBY, []),
    (S.STANDBY, Tick): (S.STANDBY, []),            # heartbeat recent: nothing
    (S.STANDBY, LockAcquired): (S.ACTIVATING, [StartActivation(steal=False)]),
    (S.STANDBY, LockFailed): None,
    (S.STANDBY, Activated): None,
    (S.STANDBY, ActivationFailed): None,
    (S.STANDBY, Fenced): None,
    (S.STANDBY, Shutdown): (S.STOPPED, [Stop(0)]),

    (S.ACTIVATING, PeerConnected): (S.ACTIVATING, []),
    (S.ACTIVATING, PeerLost): (S.ACTIVATING, []),
    (S.ACTIVATING, Heartbeat): (S.ACTIVATING, []),
    (S.ACTIVATING, Tick): (S.ACTIVATING, []),
    (S.ACTIVATING, LockAcquired): (S.ACTIVATING, []),
    (S.ACTIVATING, LockFailed): None,
    (S.ACTIVATING, Activated): (S.ACTIVE, [StartReconnectClock()]),
    (S.ACTIVATING, ActivationFailed): (S.STANDBY, [EnterStandby(), ConnectPeer(1.0)]),
    (S.ACTIVATING, Fenced): (S.STOPPED, [Stop(3)]),
    (S.ACTIVATING, Shutdown): (S.STOPPED, [Stop(0)]),

    (S.ACTIVE, PeerConnected): (S.ACTIVE, []),
    (S.ACTIVE, PeerLost): (S.ACTIVE, []),
    (S.ACTIVE, Heartbeat): (S.ACTIVE, []),
    (S.ACTIVE, Tick): (S.ACTIVE, []),
    (S.ACTIVE, LockAcquired): (S.ACTIVE, []),
    (S.ACTIVE, LockFailed): None,
    (S.ACTIVE, Activated): None,
    (S.ACTIVE, ActivationFailed): None,
    (S.ACTIVE, Fenced): (S.STOPPED, [Stop(3)]),
    (S.ACTIVE, Shutdown): (S.STOPPED, [Stop(0)]),
}
for _event in EVENTS:
    EXPECTED[(S.STOPPED, _event)] = (S.STOPPED, [])


def test_table_covers_every_pair() -> None:
    assert set(EXPECTED) == {(s, e) for s in FTState for e in EVENTS}


@pytest.mark.parametrize(("state", "event"), list(EXPECTED))
def test_pair(state: FTState, event: type[Event]) -> None:
    m = machine(state)
    expected = EXPECTED[(state, event)]
    if expected is None:
        with pytest.raises(FTError, match=event.__name__):
            m.handle(sample(event))
        assert m.state is state
        return
    actions = m.handle(sample(event))
    assert (m.state, plain(actions)) == expected


def test_starting_peer_not_active_tries_the_lock() -> None:
    m = machine(S.STARTING)
    assert m.handle(PeerConnected(active=False)) == [TryLock()]
    assert m.state is S.STARTING


def test_standby_entry_logs_the_peer() -> None:
    m = machine(S.STARTING)
    assert logs(m.handle(PeerConnected(active=True))) == [
        f"Server is in standby mode for '{PEER}'."]


def test_heartbeat_silence_activates_with_steal() -> None:
    clock = Clock()
    m = machine(S.STARTING, clock)
    m.handle(PeerConnected(active=True))
    clock.now += 2.0
    assert m.handle(Tick()) == []
    m.handle(Heartbeat())               # resets the silence
    clock.now += 2.9
    assert m.handle(Tick()) == []
    clock.now += 0.1
    actions = m.handle(Tick())
    assert m.state is S.ACTIVATING
    assert plain(actions) == [StartActivation(steal=True)]
    assert logs(actions) == [f"Missing heartbeats from primary server '{PEER}'.",
                             f"Server activating on failure of '{PEER}'."]


def test_reconnected_active_peer_resets_the_silence() -> None:
    clock = Clock()
    m = machine(S.STARTING, clock)
    m.handle(PeerConnected(active=True))
    clock.now += 2.5
    m.handle(PeerLost())
    m.handle(PeerConnected(active=True))
    clock.now += 2.5
    assert m.handle(Tick()) == []
    m.handle(PeerConnected(active=False))   # a restarting peer does not count
    clock.now += 0.6
    assert plain(m.handle(Tick())) == [StartActivation(steal=True)]


def test_activation_logs_and_failure_reenters_standby() -> None:
    m = machine(S.ACTIVATING)
    assert logs(m.handle(Activated())) == ["Server is active."]
    m = machine(S.ACTIVATING)
    assert "Server is re-entering standby mode." in logs(m.handle(ActivationFailed("x")))
    assert m.state is S.STANDBY


def test_fenced_logs_reason() -> None:
    m = machine(S.ACTIVE)
    actions = m.handle(Fenced("epoch is 5"))
    assert actions[-1] == Stop(3)
    assert "epoch is 5" in logs(actions)[0]


def test_lock_retries_are_logged_once() -> None:
    m = machine(S.STARTING)
    first = m.handle(LockFailed("pid 7"))
    assert "pid 7" in logs(first)[0] and plain(first) == [ConnectPeer(1.0)]
    assert m.handle(LockFailed("pid 7")) == [ConnectPeer(1.0)]
