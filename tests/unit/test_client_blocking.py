"""The blocking facade's loop thread and futures (no sockets)."""

import threading

import pytest

from emsfast.blocking import BlockingSendFuture, _LoopThread
from emsfast.client.messages import TextMessage
from emsfast.client.producer import SendFuture
from emsfast.errors import InvalidError, LimitError


@pytest.fixture
def runner():
    r = _LoopThread()
    yield r
    r.stop()


def test_run_and_call_return_results_and_raise_errors(runner):
    async def double(x):
        return 2 * x

    async def boom():
        raise InvalidError("bad")

    assert runner.run(double(21)) == 42
    assert runner.call(lambda a, b: a + b, 1, 2) == 3
    assert runner.call(threading.current_thread).name == "emsfast-blocking"
    with pytest.raises(InvalidError, match="bad"):
        runner.run(boom())


def test_a_blocking_call_from_the_loop_thread_is_refused(runner):
    async def nested():
        async def inner():
            return 1

        return runner.run(inner())

    with pytest.raises(RuntimeError, match="own event loop thread"):
        runner.run(nested())


def test_stop_is_idempotent():
    r = _LoopThread()
    r.stop()
    r.stop()
    assert r.loop.is_closed()


def chained(runner):
    def make():
        afut = SendFuture(loop=runner.loop)
        cf = BlockingSendFuture(afut)
        afut.add_done_callback(cf._copy)
        return afut, cf

    return runner.call(make)


def test_send_future_result_crosses_threads(runner):
    afut, cf = chained(runner)
    msg = TextMessage("x")
    runner.loop.call_soon_threadsafe(afut.set_result, msg)
    assert cf.result(timeout=5) is msg
    assert afut.seen


def test_send_future_failure_is_seen_only_when_looked_at(runner):
    afut, cf = chained(runner)
    runner.loop.call_soon_threadsafe(afut.set_exception, LimitError("full"))
    cf_done = threading.Event()
    cf.add_done_callback(lambda _f: cf_done.set())
    assert cf_done.wait(5)
    assert not afut.seen  # copying into the thread future does not count
    with pytest.raises(LimitError, match="full"):
        cf.result()
    assert afut.seen
