"""SendRecord (emsfast/server/resends.py): a resend gets its original's outcome."""

from __future__ import annotations

import asyncio

from emsfast.server.resends import SendRecord

ORIGIN = b"token\x00\x00\x00\x00\x01"


def _run(coro) -> None:
    asyncio.run(coro)


def test_new_sends_are_not_resends() -> None:
    async def main() -> None:
        rec = SendRecord()
        assert not rec.resend(ORIGIN, 1, lambda err: None)
        rec.storing(ORIGIN, 1, asyncio.get_running_loop().create_future())
        assert not rec.resend(ORIGIN, 2, lambda err: None)
    _run(main())


def test_resend_waits_for_the_original_commit() -> None:
    async def main() -> None:
        rec = SendRecord()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rec.storing(ORIGIN, 1, fut)
        answers: list[object] = []
        assert rec.resend(ORIGIN, 1, answers.append)
        assert answers == []            # not confirmed before the commit
        fut.set_result(None)
        await asyncio.sleep(0)
        assert answers == [None]
        assert rec.resend(ORIGIN, 1, answers.append)     # committed: answered at once
        assert answers == [None, None]
    _run(main())


def test_resend_of_a_failed_original_fails_or_is_stored_anew() -> None:
    async def main() -> None:
        rec = SendRecord()
        loop = asyncio.get_running_loop()
        one: asyncio.Future[None] = loop.create_future()
        two: asyncio.Future[None] = loop.create_future()
        rec.storing(ORIGIN, 1, one)
        rec.storing(ORIGIN, 2, two)
        answers: list[object] = []
        assert rec.resend(ORIGIN, 1, answers.append)     # in flight: waits for it
        one.set_exception(OSError("disk full"))
        two.set_result(None)
        await asyncio.sleep(0)
        assert len(answers) == 1 and isinstance(answers[0], OSError)
        # After the failure a resend of 1 is a new send (stored anew), once.
        assert not rec.resend(ORIGIN, 1, answers.append)
        assert rec.resend(ORIGIN, 2, answers.append) and answers[-1] is None
    _run(main())


def test_forget_drops_a_clients_records() -> None:
    async def main() -> None:
        rec = SendRecord()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rec.storing(ORIGIN, 3, fut)
        fut.set_result(None)
        await asyncio.sleep(0)
        rec.forget(b"token\x00")
        assert not rec.resend(ORIGIN, 3, lambda err: None)
    _run(main())


def test_resend_stored_anew_does_not_lower_the_highest_send() -> None:
    """1 fails, 2 is stored, 1 is resent and stored anew: a later resend of 2 must
    still be known as stored (not stored twice)."""
    async def main() -> None:
        rec = SendRecord()
        loop = asyncio.get_running_loop()
        one: asyncio.Future[None] = loop.create_future()
        two: asyncio.Future[None] = loop.create_future()
        rec.storing(ORIGIN, 1, one)
        rec.storing(ORIGIN, 2, two)
        one.set_exception(OSError("disk full"))
        two.set_result(None)
        await asyncio.sleep(0)
        assert not rec.resend(ORIGIN, 1, lambda err: None)    # stored anew:
        again: asyncio.Future[None] = loop.create_future()
        rec.storing(ORIGIN, 1, again)
        again.set_result(None)
        await asyncio.sleep(0)
        answers: list[object] = []
        assert rec.resend(ORIGIN, 2, answers.append) and answers == [None]
    _run(main())


def test_failed_sends_of_a_connected_client_are_pruned() -> None:
    """A client that got its SEND_FAILs never resends them: the record of failures
    stays bounded by the sends far behind the newest."""
    from emsfast.server.resends import STALE

    async def main() -> None:
        rec = SendRecord()
        loop = asyncio.get_running_loop()
        total = STALE + 40_000
        for seq in range(1, total + 1):
            fut: asyncio.Future[None] = loop.create_future()
            rec.storing(ORIGIN, seq, fut)
            fut.set_exception(OSError("disk full"))
        await asyncio.sleep(0)
        assert len(rec._failed[ORIGIN]) <= STALE + 16384 + 1 < total
        assert not rec.resend(ORIGIN, total, lambda err: None)   # recent: stored anew
    _run(main())
