"""A TCP proxy that can cut or blackhole the links through it (after asyncpg's fuzzer).

``FaultProxy`` listens on 127.0.0.1 port 0 and forwards each accepted connection to
``target``. ``cut()`` closes every live link (both sides see EOF/reset) and refuses
new ones until ``restore()``; ``blackhole()`` keeps sockets open but drops every byte
in both directions, like a partitioned network; ``restore()`` forwards again.

Use it from async code (``await proxy.start()``) or, for sync tests, on a loop of its
own with ``with FaultProxy.in_thread(host, port) as proxy:``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections.abc import Iterator


class _Mode(enum.Enum):
    FORWARD = "forward"
    CUT = "cut"
    BLACKHOLE = "blackhole"


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._mode = _Mode.FORWARD
        self._server: asyncio.AbstractServer | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    async def start(self) -> FaultProxy:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        # Links first: uvloop's wait_closed() waits for every accepted connection.
        self._close_links()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # Mode changes are plain methods so a test on another thread can call them
    # through ``call()``; on the proxy's own loop they take effect at once.
    def cut(self) -> None:
        self._mode = _Mode.CUT
        self._close_links()

    def blackhole(self) -> None:
        self._mode = _Mode.BLACKHOLE

    def restore(self) -> None:
        self._mode = _Mode.FORWARD

    def _close_links(self) -> None:
        for client_w, server_w in list(self._links):
            for w in (client_w, server_w):
                transport = w.transport
                if transport is not None:
                    transport.abort()
        self._links.clear()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._mode is _Mode.CUT:
            client_w.transport.abort()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        link = (client_w, server_w)
        self._links.add(link)
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.ensure_future(self._pump(reader, writer, link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        try:
            while data := await reader.read(65536):
                if self._mode is _Mode.FORWARD:
                    writer.write(data)
                    await writer.drain()
                elif self._mode is _Mode.CUT:
                    break
        except (OSError, asyncio.IncompleteReadError, RuntimeError):
            pass    # uvloop raises RuntimeError writing to a transport closed meanwhile
        finally:
            # One side ended: end the whole link, as a real TCP peer would see it.
            if link in self._links:
                self._links.discard(link)
                for w in link:
                    w.transport.abort()

    # -- on a private loop, for sync tests ------------------------------------------

    def call(self, method: str) -> None:
        """Run ``cut``/``blackhole``/``restore`` on the proxy's loop and wait for it."""
        fn = getattr(self, method)
        if self._loop is None:
            raise RuntimeError("proxy not started")
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(run)
        if not done.wait(10):
            raise TimeoutError(f"proxy loop did not run {method}()")

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls, target_host: str, target_port: int) -> Iterator[FaultProxy]:
        proxy = cls(target_host, target_port)
        loop = asyncio.new_event_loop()
        started = threading.Event()
        thread = threading.Thread(target=loop.run_forever, name="fault-proxy", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(10)
            started.set()
            yield proxy
        finally:
            if started.is_set():
                asyncio.run_coroutine_threadsafe(proxy.close(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
