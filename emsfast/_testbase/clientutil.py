"""Small async helpers for tests that drive a daemon with the client library.

Nothing here sleeps to synchronise: waits are receives with timeouts, bounded by a
deadline. ``prime`` replaces "sleep until the subscription exists": it publishes
marker messages until every subscriber has seen one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

import emsfast

PRIME_PROPERTY = "_emsfast_test_prime"


@contextlib.asynccontextmanager
async def connection(url: str, **kwargs: Any) -> AsyncIterator[Any]:
    """``emsfast.connect`` closed on exit, whatever the test did."""
    conn = await emsfast.connect(url, **kwargs)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


def mode_is(value: Any, name: str) -> bool:
    """Whether a received delivery mode (name, number or enum) is ``name``."""
    from emsfast.consts import DELIVERY_MODES

    if isinstance(value, str):
        return value.lower() == name
    return bool(value == DELIVERY_MODES[name])


def text_of(msg: Any) -> str:
    """The text body of a received message."""
    text = getattr(msg, "text", None)
    if text is None:
        body = msg.body
        text = bytes(body).decode() if isinstance(body, (bytes, bytearray, memoryview)) else body
    return str(text)


def dest_name(dest: Any) -> str:
    """The name of a destination object (or string)."""
    return str(getattr(dest, "name", dest))


def is_prime(msg: Any) -> bool:
    props = getattr(msg, "properties", None) or {}
    return bool(props.get(PRIME_PROPERTY))


async def receive_n(
    consumer: Any, n: int, timeout: float = 10.0, skip_primes: bool = True
) -> list[Any]:
    """Receive until ``n`` messages arrived or ``timeout`` elapsed; return what came."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        msg = await consumer.receive(timeout=min(left, 1.0))
        if msg is None or (skip_primes and is_prime(msg)):
            continue
        out.append(msg)
    return out


async def receive_until(consumer: Any, last_text: str, timeout: float = 10.0) -> list[Any]:
    """Receive until a message whose text is ``last_text`` (included); AssertionError
    if it does not come. Used with a marker sent last, so "nothing else arrived
    before the marker" needs no idle wait."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            got = [text_of(m) for m in out]
            raise AssertionError(f"marker {last_text!r} not received in {timeout}s; got {got}")
        msg = await consumer.receive(timeout=min(left, 1.0))
        if msg is None or is_prime(msg):
            continue
        out.append(msg)
        if text_of(msg) == last_text:
            return out


async def receive_shared(
    consumers: Sequence[Any], n: int, timeout: float = 10.0
) -> list[list[Any]]:
    """Receive on all ``consumers`` concurrently until ``n`` messages in total."""
    got: list[list[Any]] = [[] for _ in consumers]
    deadline = time.monotonic() + timeout

    async def pump(i: int, consumer: Any) -> None:
        while sum(map(len, got)) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            msg = await consumer.receive(timeout=min(left, 0.2))
            if msg is not None:
                got[i].append(msg)

    await asyncio.gather(*(pump(i, c) for i, c in enumerate(consumers)))
    return got


async def prime(
    producer: Any, consumers: Iterable[Any], timeout: float = 10.0
) -> dict[int, list[Any]]:
    """Publish non-persistent markers until every consumer received one.

    Returns, per consumer index, the non-marker messages that arrived meanwhile (a
    test may assert there were none). Markers still in flight are dropped later by
    ``receive_n``/``receive_until``, which skip them.
    """
    pending = dict(enumerate(consumers))
    seen: dict[int, list[Any]] = {i: [] for i in pending}
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise AssertionError(f"subscribers {sorted(pending)} never saw a marker")
        await producer.send(
            emsfast.TextMessage("prime", properties={PRIME_PROPERTY: True}),
            delivery_mode="non_persistent",
        )
        for i, consumer in list(pending.items()):
            msg = await consumer.receive(timeout=0.1)
            while msg is not None:
                if is_prime(msg):
                    del pending[i]
                    break
                seen[i].append(msg)
                msg = await consumer.receive(timeout=0.1)
    return seen


async def eventually(check: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Call async ``check()`` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = await check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported if it never succeeds
            last_exc = exc
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last error: {last_exc!r})")
