"""The chaos checker's rules (bench/chaos_check.py) on hand-made histories.

Each rule is shown passing a clean history and failing the history it exists for,
so a checker that always says OK cannot pass here.
"""

from __future__ import annotations

from bench.chaos import growth, growth_violations
from bench.chaos_check import (
    ConsumerLog,
    Ownership,
    ProducerLog,
    check_messages,
    check_ownership,
)


def _producer(sent: int = 5, confirmed: range | None = None) -> dict[str, ProducerLog]:
    p = ProducerLog("p0", "queue:q", sent=sent)
    p.confirmed = set(confirmed if confirmed is not None else range(1, sent + 1))
    return {"p0": p}


def _consumer(*deliveries: tuple[str, int, bool]) -> ConsumerLog:
    return ConsumerLog("c0", "queue:q", ("p0",), list(deliveries))


def _kinds(violations: list) -> list[str]:
    return [v.kind for v in violations]


def test_clean_history_passes() -> None:
    c = _consumer(*[("p0", s, False) for s in range(1, 6)])
    assert check_messages(_producer(), [c]) == []


def test_redelivery_flagged_is_not_a_duplicate() -> None:
    c = _consumer(("p0", 1, False), ("p0", 2, False), ("p0", 2, True), ("p0", 3, False),
                  ("p0", 4, False), ("p0", 5, False))
    assert check_messages(_producer(), [c]) == []


def test_confirmed_but_never_delivered_is_lost() -> None:
    c = _consumer(("p0", 1, False), ("p0", 2, False), ("p0", 4, False), ("p0", 5, False))
    (v,) = check_messages(_producer(), [c])
    assert v.kind == "lost" and v.examples == [("p0", 3)]
    assert "p0#3" in v.text and "c0" in v.text


def test_uncertain_send_may_be_missing() -> None:
    producers = _producer(sent=5, confirmed=range(1, 5))
    producers["p0"].uncertain[5] = "connection given up"
    c = _consumer(*[("p0", s, False) for s in range(1, 5)])
    assert check_messages(producers, [c]) == []


def test_message_nobody_sent_is_unexpected() -> None:
    c = _consumer(*[("p0", s, False) for s in range(1, 6)], ("p0", 9, False), ("px", 1, False))
    (v,) = check_messages(_producer(), [c])
    assert v.kind == "unexpected" and v.count == 2


def test_refused_send_delivered_is_a_violation() -> None:
    producers = _producer(sent=3, confirmed=range(1, 3))
    producers["p0"].refused[3] = "StoreError: disk full"
    c = _consumer(("p0", 1, False), ("p0", 2, False), ("p0", 3, False))
    (v,) = check_messages(producers, [c])
    assert v.kind == "refused_delivered" and "disk full" in v.text


def test_unflagged_duplicate() -> None:
    c = _consumer(*[("p0", s, False) for s in range(1, 6)], ("p0", 2, False))
    (v,) = check_messages(_producer(), [c])
    assert v.kind == "duplicate" and v.examples == [("p0", 2)]


def test_first_deliveries_out_of_order() -> None:
    c = _consumer(("p0", 1, False), ("p0", 3, False), ("p0", 2, False), ("p0", 4, False),
                  ("p0", 5, False))
    (v,) = check_messages(_producer(), [c])
    assert v.kind == "order" and "p0#2 after p0#3" in v.text


def test_redelivered_messages_may_come_out_of_order() -> None:
    c = _consumer(("p0", 1, False), ("p0", 3, False), ("p0", 2, True), ("p0", 4, False),
                  ("p0", 5, False))
    assert check_messages(_producer(), [c]) == []


def test_epochs_must_grow_and_members_must_not_both_be_ready() -> None:
    good = [Ownership(10.0, "a", 1, 1), Ownership(12.0, "b", 1, 2), Ownership(15.0, "a", 2, 3)]
    assert check_ownership(good, []) == []
    bad = [*good, Ownership(16.0, "b", 2, 3)]
    (v,) = check_ownership(bad, [])
    assert v.kind == "two_actives" and "epoch 3" in v.text
    (v,) = check_ownership(good, [20.5])
    assert v.kind == "two_actives" and "both members" in v.text


def _samples(rss: list[int], fds: list[int], run: int = 1) -> list[dict]:
    return [{"t": float(i), "a": {"run": run, "rss_kib": r, "fds": f, "active": True}}
            for i, (r, f) in enumerate(zip(rss, fds, strict=True))]


def test_growth_flat_passes_and_growing_fails() -> None:
    flat = growth(_samples([100_000] * 20, [30] * 20), warmup=0)
    assert flat["checked"] and growth_violations(flat) == []
    rising = growth(_samples([100_000 + 5_000 * i for i in range(20)],
                             [30 + i for i in range(20)]), warmup=0)
    assert sorted(_kinds(growth_violations(rising))) == ["fd_growth", "rss_growth"]


def test_growth_not_judged_across_restarts() -> None:
    s = _samples([100_000] * 10, [30] * 10) + _samples([200_000] * 10, [30] * 10, run=2)
    g = growth(s, warmup=0)
    assert not g["checked"] and growth_violations(g) == []
