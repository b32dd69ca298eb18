"""Server lifecycle: configuration → store → recovery → listeners → active.

Client listeners open only after recovery (DESIGN.md §5), so a client never sees
a half-recovered server.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any, Protocol

from emsfast._core import COMPILED
from emsfast.config.destinations import DestinationTable, load_destinations
from emsfast.config.durables import StaticDurable, load_durables
from emsfast.config.sections import check_section_files
from emsfast.config.stores import StoreConfig, load_stores
from emsfast.config.tibemsd import TibemsdConfig, parse_service_url
from emsfast.consts import MAX_MSG_SIZE_CEILING
from emsfast.errors import ConfigError
from emsfast.ft.machine import FTState
from emsfast.ft.peer import ensure_store_id
from emsfast.ft.runner import STEAL_GRACE
from emsfast.log import Tracer, log, parse_trace
from emsfast.server.authz import Authz
from emsfast.server.broker import Broker
from emsfast.server.connection import ClientConnection
from emsfast.server.health import HealthListener
from emsfast.server.heartbeats import Heartbeats
from emsfast.server.resends import SendRecord
from emsfast.server.tls import TlsListener, server_context
from emsfast.store.base import Store
from emsfast.store.lmdb_store import LmdbStore

if TYPE_CHECKING:
    from emsfast.ft.runner import FTRunner

# Exit code the daemon returns once ``shutdown`` is set (DESIGN.md §1).
EXIT_FENCED = 3


def load_destination_tables(config: TibemsdConfig) -> tuple[DestinationTable, DestinationTable]:
    queues = load_destinations(config.queues, "queue", required=config.is_set("queues"))
    topics = load_destinations(config.topics, "topic", required=config.is_set("topics"))
    return queues, topics


class SideListener(Protocol):
    """A listener beside the client ones (health, STOMP), started and stopped with them."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Server:
    def __init__(self, config: TibemsdConfig, store: Store | None = None,
                 trace: str | None = None, skip_corrupt: bool = False) -> None:
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
            config.store, self.stores, on_fenced=self._fenced, skip_corrupt=skip_corrupt)
        self.broker = Broker(self.name, self.store, self.queue_table, self.topic_table)
        self.broker.known_stores = frozenset(self.stores)
        # Set when the server must stop by itself (fenced); the daemon exits with
        # ``exit_code``.
        self.shutdown = asyncio.Event()
        self.exit_code = 0
        self.connections: dict[int, ClientConnection] = {}
        self.heartbeats = Heartbeats(self)
        self.client_ids: dict[str, ClientConnection] = {}
        self._servers: list[asyncio.Server] = []
        self._next_conn = 0
        self.loop: asyncio.AbstractEventLoop = asyncio.get_event_loop_policy().get_event_loop()
        self.stopped = asyncio.Event()
        self.recovered = False              # listeners open after recovery: /isReady
        self.stomp_connections: set[object] = set()
        self._side: list[SideListener] = []
        self._tls_listeners: list[TlsListener] = []
        self.tls_handshakes: set[asyncio.Task[None]] = set()
        self._tls_ctx: ssl.SSLContext | None = None
        # FT (emsfast/ft): "starting", "standby", "activating", "active", "stopped".
        self.ft_state = "active"
        self.failovers = 0
        self.ft: FTRunner | None = None
        self._store_open = False
        # FT clients (connection.token): highest stored send per producer, and the
        # cleanup of clients that do not come back within ft_reconnect_timeout.
        self.sends = SendRecord()
        self._token_timers: dict[str, asyncio.TimerHandle] = {}
        self._recovered_tokens: set[str] = set()

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
        # The successor owns every send this server has not confirmed: drop clients
        # unanswered, so they fail over and resend there (duplicates are dropped),
        # instead of hearing "store failed" for messages that need not fail.
        for conn in list(self.connections.values()):
            if not conn.ft_peer:
                conn.abort()
        if self.ft is not None and self.ft.state in (FTState.ACTIVATING, FTState.ACTIVE):
            self.ft.fenced(reason)      # the machine logs and stops with exit 3
            return
        log.error(f"{reason}. Server is fenced and stops writing; exiting.")
        self.exit_code = EXIT_FENCED
        self.shutdown.set()

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.heartbeats.start(self.loop)
        config = self.config
        # Before the store opens: with SSL in startup_abort_list a bad file stops here.
        self._tls_ctx = self._tls_context() if any(u.tls for u in config.listen_urls) else None
        for warning in (config.warnings + self.queue_table.warnings + self.topic_table.warnings
                        + self.store_warnings + self.authz.warnings):
            log.warning(warning)
        log.info(f"Server name: '{self.name}'.")
        log.info(f"Storage Location: '{os.path.abspath(config.store)}'.")
        log.info(f"Authorization is {'enabled' if self.authz.enabled else 'disabled'}.")
        loop_name = type(self.loop).__module__.split(".")[0]
        log.info(f"Event loop: {loop_name}; native core compiled: {COMPILED}.")
        if config.ft_active:
            await self._start_ft()
            return
        self.store.open(self.loop)
        self._store_open = True
        self._log_epoch()
        if config.health_check_listen:
            # Before recovery: probes get 503 from /isReady, not "refused", until active.
            await self._start_side(HealthListener(
                self, parse_service_url(config.health_check_listen, "http")))
        try:
            self._recover()
        except BaseException:
            self._store_open = False
            self.store.close()
            raise
        await self._open_listeners()
        await self._start_stomp()
        self.recovered = True
        log.info("Server is active.")

    async def _open_listeners(self) -> None:
        config = self.config
        for url in config.listen_urls:
            if url.tls and self._tls_ctx is None:
                log.error(f"Not listening on {url}: TLS could not be initialised.")
                continue
            await self._listen(url.host, url.port, self._tls_ctx if url.tls else None)
        if not self._servers and not self._tls_listeners:
            if self._store_open:
                self._store_open = False
                self.store.close()
            raise ConfigError(f"{config.path}: listen: no listener could be opened",
                              key="listen")

    def _recover(self) -> None:
        log.info("Recovering state, please wait.")
        began = time.perf_counter()
        # Recovery makes millions of long-lived objects; the cyclic collector
        # would walk them over and over (the daemon freezes them afterwards).
        gc.disable()
        try:
            state = self.store.recover()
            recovered = self.broker.recover(state)
            holders = self.broker.recovered_holders
            self.sends.recovered(state.sends)
            self._recovered_tokens = {o.split(b"\x00", 1)[0].decode() for o in state.sends}
            del state
        finally:
            gc.enable()
        ms = (time.perf_counter() - began) * 1000
        log.info(f"Recovered {recovered} message{'s' if recovered != 1 else ''} in "
                 f"{holders} destination{'s' if holders != 1 else ''} in {ms:.0f} ms.")
        self.broker.add_static_durables(self.static_durables)

    # -- fault tolerance (emsfast/ft; DESIGN.md §6) -------------------------------------

    async def _start_ft(self) -> None:
        """Listeners first (a standby refuses clients and serves admins), the store
        only once the FT machine decides this member activates."""
        from emsfast.ft.runner import FTRunner

        config = self.config
        self.ft_state = "starting"
        if config.health_check_listen:
            await self._start_side(HealthListener(
                self, parse_service_url(config.health_check_listen, "http")))
        await self._open_listeners()
        log.info(f"Fault tolerance: peer '{config.ft_active}', heartbeat "
                 f"{config.ft_heartbeat:g} s, activation {config.ft_activation:g} s.")
        self.ft = FTRunner(self)
        self.ft.start()

    async def activate(self, steal: bool, failover: bool = True) -> None:
        """Lock → epoch bump → recovery → serve. Any step may die with the process:
        before the bump nothing changed; after it the old active is fenced and the
        store holds only committed transactions, which the next owner recovers."""
        for conn in list(self.connections.values()):
            if not conn.ft_peer:
                conn.close()        # admin tools on the standby are dropped (EMS.md 1.5)
        if failover:
            log.info("Server rereading configuration.")
            self._reread_config()
        if isinstance(self.store, LmdbStore):
            await self._open_for_takeover(self.store, steal)
            if self.store.stolen:
                log.warning(f"Store lock '{self.store.lock.path}' is still held by "
                            f"{self.store.lock.owner()}; taking over by epoch "
                            f"{self.store.epoch}: the old owner is fenced at its next write.")
                # Never two serving: give a still-running old active time to read
                # the new epoch and stop (ft/runner.py checks it every tick).
                await asyncio.sleep(STEAL_GRACE)
        else:
            self.store.open(self.loop)
        self._store_open = True
        self._log_epoch()
        try:
            ensure_store_id(self.config.store)
            self._recover()
        except BaseException:
            self._store_open = False
            self.store.close()
            raise
        await self._start_stomp()
        self.recovered = True
        self.failovers += failover

    def _log_epoch(self) -> None:
        # One line per ownership: the chaos checker (bench/chaos.py) reads these to
        # prove that no two servers ever owned the store at the same epoch.
        if isinstance(self.store, LmdbStore):
            log.info(f"Store epoch {self.store.epoch}: this server owns "
                     f"'{os.path.abspath(self.config.store)}'.")

    async def _open_for_takeover(self, store: LmdbStore, steal: bool) -> None:
        # The epoch bump needs LMDB's writer lock; a hung (SIGSTOPped) active caught
        # inside a commit holds it until it runs again. Say so instead of hanging mute.
        opening = asyncio.ensure_future(asyncio.to_thread(store.open, self.loop, steal=steal))
        while not (await asyncio.wait({opening}, timeout=5))[0]:
            log.warning(f"Store '{store.dir}' is still being written by its previous owner "
                        f"({store.lock.owner()}); a process hung inside a write transaction "
                        "must run or be killed before this server can take over.")
        opening.result()

    def _reread_config(self) -> None:
        # The standby served nothing, so its broker is empty: rebuild it from the
        # files as they are now (admin changes made on the failed active).
        try:
            queues, topics = load_destination_tables(self.config)
            authz = Authz(self.config)
            durables = load_durables(self.config.durables,
                                     required=self.config.is_set("durables"), warnings=[])
        except ConfigError as exc:
            log.error(f"Rereading configuration failed, keeping the previous one: {exc}")
            return
        self.queue_table, self.topic_table, self.authz = queues, topics, authz
        self.static_durables = durables
        self.broker = Broker(self.name, self.store, queues, topics)
        self.broker.known_stores = frozenset(self.stores)

    def reconnect_expired(self) -> None:
        """ft_reconnect_timeout ran out: forget the send records of the failed
        server's clients that did not come back. (Their unacked messages were
        recovered as undelivered; sessions and consumers are not shared state.)"""
        gone = self._recovered_tokens
        self._recovered_tokens = set()
        for token in gone:
            self._forget_token(token)
        log.info(f"ft_reconnect_timeout ({self.config.ft_reconnect_timeout:g} s) expired: "
                 f"{len(gone)} client{'s' if len(gone) != 1 else ''} did not reconnect.")

    def token_returned(self, token: str) -> None:
        self._recovered_tokens.discard(token)
        timer = self._token_timers.pop(token, None)
        if timer is not None:
            timer.cancel()

    def token_lost(self, token: str) -> None:
        if any(c.token == token for c in self.connections.values()):
            return
        old = self._token_timers.pop(token, None)
        if old is not None:
            old.cancel()
        self._token_timers[token] = self.loop.call_later(
            self.config.ft_reconnect_timeout, self._forget_token, token)

    def _forget_token(self, token: str) -> None:
        self._token_timers.pop(token, None)
        prefix = token.encode() + b"\x00"
        self.sends.forget(prefix)
        if self._store_open and not getattr(self.store, "fenced", None):
            self.store.forget_sends(prefix)

    async def _start_stomp(self) -> None:
        if self.config.stomp_listen:
            from emsfast.server.stomp import StompListener

            await self._start_side(StompListener(
                self, parse_service_url(self.config.stomp_listen, "tcp")))

    async def _start_side(self, listener: SideListener) -> None:
        await listener.start()
        self._side.append(listener)

    def _tls_context(self) -> ssl.SSLContext | None:
        """The ssl:// listeners' context; None (logged) unless SSL is in startup_abort_list."""
        try:
            ctx, warnings = server_context(self.config)
        except ConfigError as exc:
            if "SSL" in self.config.startup_abort_list:
                raise
            log.error(f"TLS initialisation failed: {exc}")
            return None
        for warning in warnings:
            log.warning(warning)
        return ctx

    async def _listen(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        shown = host or socket.gethostname()
        if tls is not None:
            listener = TlsListener(self, tls, host, port)
            await listener.start()
            self._tls_listeners.append(listener)
            for sock in listener.sockets:
                ip, bound = sock.getsockname()[:2]
                log.info(f"Accepting connections on ssl://{shown}/{ip}:{bound}.")
            return
        srv = await self.loop.create_server(
            lambda: ClientConnection(self), host or None, port, reuse_address=True,
            backlog=1024)
        self._servers.append(srv)
        for sock in srv.sockets:
            ip, bound = sock.getsockname()[:2]
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            log.info(f"Accepting connections on tcp://{shown}/{ip}:{bound}.")

    @property
    def bound_ports(self) -> list[int]:
        tls = [s.getsockname()[1] for listener in self._tls_listeners for s in listener.sockets]
        return [s.getsockname()[1] for srv in self._servers for s in srv.sockets] + tls

    async def stop(self) -> None:
        """Stop accepting, close clients, let the store finish its writes."""
        self.recovered = False      # /isReady answers 503 from here on
        self.heartbeats.stop()
        for srv in self._servers:
            srv.close()
        for listener in self._tls_listeners:
            listener.close()
        for task in list(self.tls_handshakes):
            task.cancel()
        for conn in list(self.connections.values()):
            conn.close()
        for srv in self._servers:
            await srv.wait_closed()
        for side in self._side:
            await side.stop()
        if self.ft is not None:
            self.ft.stop()
        # A fenced store must not be written, not even a last flush.
        if self._store_open and not getattr(self.store, "fenced", None):
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
