"""Server lifecycle: configuration → store → recovery → listeners → active.

Client listeners open only after recovery (DESIGN.md §5), so a client never sees
a half-recovered server.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
from typing import Any

from emsfast._core import COMPILED
from emsfast.config.destinations import DestinationTable, load_destinations
from emsfast.config.durables import StaticDurable, load_durables
from emsfast.config.sections import check_section_files
from emsfast.config.stores import StoreConfig, load_stores
from emsfast.config.tibemsd import TibemsdConfig
from emsfast.consts import MAX_MSG_SIZE_CEILING
from emsfast.errors import ConfigError
from emsfast.log import Tracer, log, parse_trace
from emsfast.server.authz import Authz
from emsfast.server.broker import Broker
from emsfast.server.connection import ClientConnection
from emsfast.store.base import Store
from emsfast.store.lmdb_store import LmdbStore

# Exit code the daemon returns once ``shutdown`` is set (DESIGN.md §1).
EXIT_FENCED = 3


def load_destination_tables(config: TibemsdConfig) -> tuple[DestinationTable, DestinationTable]:
    queues = load_destinations(config.queues, "queue", required=config.is_set("queues"))
    topics = load_destinations(config.topics, "topic", required=config.is_set("topics"))
    return queues, topics


class Server:
    def __init__(self, config: TibemsdConfig, store: Store | None = None,
                 trace: str | None = None) -> None:
        self.config = config
        self.name = config.server
        self.max_msg_size = config.max_msg_size or MAX_MSG_SIZE_CEILING
        try:
            self.tracer = Tracer(parse_trace(trace or config.log_trace))
        except ValueError as exc:
            raise ConfigError(f"log_trace: {exc}") from exc
        self.queue_table, self.topic_table = load_destination_tables(config)
        self.authz = Authz(config)
        self.authz.warnings.extend(check_section_files(
            config.factories, config.is_set("factories"), config.routes, config.is_set("routes")))
        self.store_warnings: list[str] = []
        self.stores: dict[str, StoreConfig] = load_stores(
            config.stores, config.store, self.store_warnings)
        self._check_destination_stores()
        self.static_durables: list[StaticDurable] = load_durables(
            config.durables, required=config.is_set("durables"), warnings=self.store_warnings)
        # Tests pass a MemoryStore; the daemon always runs on LMDB.
        self.store: Store = store if store is not None else LmdbStore(
            config.store, self.stores, on_fenced=self._fenced)
        self.broker = Broker(self.name, self.store, self.queue_table, self.topic_table)
        self.broker.known_stores = frozenset(self.stores)
        # Set when the server must stop by itself (fenced); the daemon exits with
        # ``exit_code``.
        self.shutdown = asyncio.Event()
        self.exit_code = 0
        self.connections: dict[int, ClientConnection] = {}
        self.client_ids: dict[str, ClientConnection] = {}
        self._servers: list[asyncio.Server] = []
        self._next_conn = 0
        self.loop: asyncio.AbstractEventLoop = asyncio.get_event_loop_policy().get_event_loop()
        self.stopped = asyncio.Event()

    def next_connection_id(self) -> int:
        self._next_conn += 1
        return self._next_conn

    def _check_destination_stores(self) -> None:
        # Static (exact) entries fail the start; a wildcard entry fails only the
        # destinations created through it (Broker._props tells the client).
        for table in (self.queue_table, self.topic_table):
            for entry in table.entries:
                static = not {"*", ">"} & set(entry.name.split("."))
                if static and entry.store is not None and entry.store not in self.stores:
                    raise ConfigError(
                        f"{entry.where}: store: store {entry.store!r} is not defined in "
                        f"{self.config.stores}", path=entry.path, line=entry.line, key="store")

    def _fenced(self, reason: str) -> None:
        log.error(f"{reason}. Server is fenced and stops writing; exiting.")
        self.exit_code = EXIT_FENCED
        self.shutdown.set()

    def _check_supported(self) -> None:
        """Refuse settings whose feature has not landed rather than ignore them."""
        config = self.config
        if config.ft_active:
            raise ConfigError(
                f"{config.path}: ft_active is set but fault-tolerant pairs are not supported "
                "yet; remove ft_active to run standalone", key="ft_active")
        for url in config.listen_urls:
            if url.tls:
                raise ConfigError(f"{config.path}: listen {url}: ssl:// listeners are not "
                                  "supported yet (TLS arrives with its own issue)", key="listen")

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._check_supported()
        config = self.config
        for warning in (config.warnings + self.queue_table.warnings + self.topic_table.warnings
                        + self.store_warnings + self.authz.warnings):
            log.warning(warning)
        log.info(f"Server name: '{self.name}'.")
        log.info(f"Storage Location: '{os.path.abspath(config.store)}'.")
        log.info(f"Authorization is {'enabled' if self.authz.enabled else 'disabled'}.")
        loop_name = type(self.loop).__module__.split(".")[0]
        log.info(f"Event loop: {loop_name}; native core compiled: {COMPILED}.")
        self.store.open(self.loop)
        try:
            log.info("Recovering state, please wait.")
            began = time.perf_counter()
            # Recovery makes millions of long-lived objects; the cyclic collector
            # would walk them over and over (the daemon freezes them afterwards).
            gc.disable()
            try:
                state = self.store.recover()
                recovered = self.broker.recover(state)
                holders = self.broker.recovered_holders
                del state
            finally:
                gc.enable()
            ms = (time.perf_counter() - began) * 1000
            log.info(f"Recovered {recovered} message{'s' if recovered != 1 else ''} in "
                     f"{holders} destination{'s' if holders != 1 else ''} in {ms:.0f} ms.")
            self.broker.add_static_durables(self.static_durables)
        except BaseException:
            self.store.close()
            raise
        for url in config.listen_urls:
            await self._listen(url.host, url.port)
        log.info("Server is active.")

    async def _listen(self, host: str, port: int) -> None:
        srv = await self.loop.create_server(
            lambda: ClientConnection(self), host or None, port, reuse_address=True,
            backlog=1024)
        self._servers.append(srv)
        shown = host or socket.gethostname()
        for sock in srv.sockets:
            ip, bound = sock.getsockname()[:2]
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            log.info(f"Accepting connections on tcp://{shown}/{ip}:{bound}.")

    @property
    def bound_ports(self) -> list[int]:
        return [s.getsockname()[1] for srv in self._servers for s in srv.sockets]

    async def stop(self) -> None:
        """Stop accepting, close clients, let the store finish its writes."""
        for srv in self._servers:
            srv.close()
        for conn in list(self.connections.values()):
            conn.close()
        for srv in self._servers:
            await srv.wait_closed()
        try:
            await asyncio.wait_for(self.store.flush(), timeout=30)
        except Exception as exc:  # shutting down: report and go on closing
            log.error(f"Store flush at shutdown failed: {exc}")
        self.store.close()
        self.stopped.set()

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self.connections),
            "queues": len(self.broker.queues),
            "topics": len(self.broker.topics),
        }
