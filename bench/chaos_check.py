"""The chaos checker's verdict: pure functions over what the load recorded.

Kept apart from the process and fault machinery (bench/chaos.py) so the rules can
be tested on hand-made histories, including histories that must fail.

What counts (issue 9):

- *lost*: a send the server confirmed whose message never reached a consumer that
  must see it (the queue's consumer, every durable subscriber of the topic);
- *unexpected*: a delivery of a message nobody sent (unknown producer or a sequence
  number above the producer's last send);
- *refused but delivered*: the server answered the send with an error (a full store,
  say), yet the message was delivered;
- *unflagged duplicate*: a message delivered again to the same consumer without
  JMSRedelivered;
- *order*: among first deliveries (not flagged redelivered) on one consumer, one
  producer's messages must arrive in the order sent;
- *two actives*: two store ownerships with the same or a decreasing epoch, or two
  members answering ``/isReady`` at the same instant.

Sends that failed without a server answer (the connection gave up) are
*uncertain*: they may or may not be delivered, and neither outcome is a violation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

EXAMPLES = 10       # offending ids kept per violation kind and consumer


@dataclass
class ProducerLog:
    name: str
    destination: str            # "queue:chaos.q0", "topic:chaos.t"
    sent: int = 0               # sequence numbers 1..sent were handed to send()
    confirmed: set[int] = field(default_factory=set)
    refused: dict[int, str] = field(default_factory=dict)    # seq -> server's error
    uncertain: dict[int, str] = field(default_factory=dict)  # seq -> client-side failure


@dataclass
class ConsumerLog:
    name: str
    destination: str
    expects: tuple[str, ...]    # producers whose every confirmed send must arrive
    # (producer, seq, redelivered) in the order the application received them
    deliveries: list[tuple[str, int, bool]] = field(default_factory=list)


@dataclass
class Ownership:
    """One ``Store epoch N`` line: member ``member`` (incarnation ``run``) owned the store."""
    at: float                   # wall-clock seconds, from the log line
    member: str
    run: int
    epoch: int


@dataclass
class Violation:
    kind: str
    consumer: str | None
    count: int
    examples: list[Any]
    text: str                   # plain words: what broke

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "consumer": self.consumer, "count": self.count,
                "examples": self.examples, "text": self.text}


def check_messages(producers: Mapping[str, ProducerLog],
                   consumers: Iterable[ConsumerLog]) -> list[Violation]:
    return [v for c in consumers for v in _check_consumer(c, producers)]


def _check_consumer(c: ConsumerLog, producers: Mapping[str, ProducerLog]) -> list[Violation]:
    seen: dict[tuple[str, int], int] = {}
    unexpected: list[tuple[str, int]] = []
    refused: list[tuple[str, int, str]] = []
    dups: list[tuple[str, int]] = []
    backwards: list[tuple[str, int, int]] = []
    last_first: dict[str, int] = {}
    for prod, seq, redelivered in c.deliveries:
        p = producers.get(prod)
        if p is None or not 1 <= seq <= p.sent:
            unexpected.append((prod, seq))
            continue
        if seq in p.refused:
            refused.append((prod, seq, p.refused[seq]))
        key = (prod, seq)
        if key in seen and not redelivered:
            dups.append(key)
        seen[key] = seen.get(key, 0) + 1
        if not redelivered and seen[key] == 1:
            if seq < last_first.get(prod, 0):
                backwards.append((prod, last_first[prod], seq))
            last_first[prod] = max(seq, last_first.get(prod, 0))
    lost = [(prod, seq) for prod in c.expects
            for seq in sorted(producers[prod].confirmed) if (prod, seq) not in seen]
    # kind, offending items, and what broke in words (built only when found)
    found: list[tuple[str, list[Any], Callable[[], str]]] = [
        ("lost", lost, lambda: f"{len(lost)} confirmed message(s) never reached "
                           f"{c.name} on {c.destination}, e.g. {_ids(lost)}"),
        ("unexpected", unexpected, lambda: f"{c.name} received {len(unexpected)} "
                                           f"message(s) that no producer sent, e.g. "
                                           f"{_ids(unexpected)}"),
        ("refused_delivered", refused, lambda: f"{c.name} received {len(refused)} "
                                               "message(s) whose send the server had "
                                               f"refused, e.g. {refused[0][0]}#"
                                               f"{refused[0][1]} ({refused[0][2]})"),
        ("duplicate", dups, lambda: f"{c.name} received {len(dups)} message(s) a second "
                                    f"time without JMSRedelivered, e.g. {_ids(dups)}"),
        ("order", backwards, lambda: f"{c.name} received {len(backwards)} first "
                                     "delivery(ies) out of send order, e.g. "
                                     f"{backwards[0][0]}#{backwards[0][2]} after "
                                     f"{backwards[0][0]}#{backwards[0][1]}"),
    ]
    return [Violation(kind, c.name, len(items), items[:EXAMPLES], text())
            for kind, items, text in found if items]


def check_ownership(owners: list[Ownership],
                    both_ready: list[float]) -> list[Violation]:
    """Epochs must strictly increase in the order ownerships began; no instant may
    see both members ready (``both_ready``: the wall-clock times that did)."""
    out: list[Violation] = []
    bad: list[dict[str, Any]] = []
    ordered = sorted(owners, key=lambda o: (o.at, o.epoch))
    for prev, cur in zip(ordered, ordered[1:], strict=False):
        if cur.epoch <= prev.epoch:
            bad.append({"first": vars(prev), "then": vars(cur)})
    if bad:
        b = bad[0]
        out.append(Violation(
            "two_actives", None, len(bad), bad[:EXAMPLES],
            f"store epoch did not increase at a takeover: {b['then']['member']} took "
            f"epoch {b['then']['epoch']} after {b['first']['member']} had epoch "
            f"{b['first']['epoch']}"))
    if both_ready:
        out.append(Violation(
            "two_actives", None, len(both_ready), [round(t, 3) for t in both_ready[:EXAMPLES]],
            f"both members answered /isReady at the same time, {len(both_ready)} time(s)"))
    return out


def summarize(producers: Mapping[str, ProducerLog],
              consumers: Iterable[ConsumerLog]) -> dict[str, Any]:
    consumers = list(consumers)
    return {
        "producers": {p.name: {"destination": p.destination, "sent": p.sent,
                               "confirmed": len(p.confirmed), "refused": len(p.refused),
                               "uncertain": len(p.uncertain),
                               "refusal_examples": sorted(set(p.refused.values()))[:3],
                               "uncertain_examples": sorted(set(p.uncertain.values()))[:3]}
                      for p in producers.values()},
        "consumers": {c.name: {"destination": c.destination,
                               "received": len(c.deliveries),
                               "redelivered": sum(1 for d in c.deliveries if d[2])}
                      for c in consumers},
    }


def _ids(pairs: list[tuple[str, int]]) -> str:
    return ", ".join(f"{p}#{s}" for p, s in pairs[:5])
