"""Shared fixtures: daemons, unique names, and async tests on two event loops.

An ``async def`` test is run by ``pytest_pyfunc_call`` below, once on stock asyncio
(the reference) and once on uvloop, each in a fresh loop; it fails if anything
reaches the loop's exception handler (a task died unobserved, a future's exception
was never retrieved). No pytest-asyncio needed.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from emsfast._testbase.server_process import ServerProcess

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a runtime dependency on POSIX
    uvloop = None

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {"asyncio": asyncio.new_event_loop}
if uvloop is not None:
    LOOPS["uvloop"] = uvloop.new_event_loop


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if inspect.iscoroutinefunction(metafunc.function):
        if "loop_factory" not in metafunc.fixturenames:
            metafunc.fixturenames.append("loop_factory")
        metafunc.parametrize("loop_factory", list(LOOPS))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    fn = pyfuncitem.obj
    if not inspect.iscoroutinefunction(fn):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    factory = LOOPS[pyfuncitem.callspec.params["loop_factory"]]
    errors: list[dict[str, Any]] = []
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.get_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        runner.run(fn(**kwargs))
    if errors:
        pytest.fail(
            "the event loop's exception handler was called:\n"
            + "\n".join(repr(ctx) for ctx in errors)
        )
    return True


# -- daemons --------------------------------------------------------------------------


class ServerFactory:
    """Starts ``ServerProcess``es and kills every one of them at teardown."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self.servers: list[ServerProcess] = []

    def __call__(self, start: bool = True, **kwargs: Any) -> ServerProcess:
        server = ServerProcess(self._tmp.mktemp("emsfastd"), **kwargs)
        self.servers.append(server)
        if start:
            server.start()
        return server

    def cleanup(self) -> None:
        for server in self.servers:
            server.kill()


@pytest.fixture
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Fresh daemons with a custom configuration, for this test only."""
    factory = ServerFactory(tmp_path_factory)
    yield factory
    factory.cleanup()


@pytest.fixture(scope="module")
def module_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Daemons shared by the tests of one module (they use unique destination names)."""
    factory = ServerFactory(tmp_path_factory)
    yield factory
    factory.cleanup()


@pytest.fixture(scope="module")
def server(module_server_factory: ServerFactory) -> ServerProcess:
    """A default daemon (queues.conf and topics.conf hold ``>``), shared per module."""
    srv = module_server_factory()
    return srv


@pytest.fixture(autouse=True)
def _server_still_alive(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that crashed the shared daemon fails, and says so with the log."""
    yield
    if "server" in request.fixturenames:
        srv: ServerProcess = request.getfixturevalue("server")
        if not srv.is_running():
            pytest.fail(f"the shared daemon died (rc={srv.returncode}):\n{srv.log_text()}")


_counter = itertools.count()


@pytest.fixture
def uniq(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """``uniq("orders")`` → a destination name no other test (or loop run) uses."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:80]

    def make(prefix: str) -> str:
        return f"{prefix}.{base}_{next(_counter)}"

    return make
