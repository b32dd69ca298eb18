"""``emsfastd``: the broker daemon, with tibemsd's options.

Exit codes (DESIGN.md §1): 0 clean shutdown, 1 configuration error, 2 store
error, 3 fenced.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import signal
import sys

from emsfast._version import __version__
from emsfast.cli import EmsArgumentParser
from emsfast.errors import ConfigError, FencedError, StoreError, StoreLockedError

EXIT_OK, EXIT_CONFIG, EXIT_STORE, EXIT_FENCED = 0, 1, 2, 3

# Options that override the same-named tibemsd.conf parameter.
OVERRIDES = ("server", "listen", "store", "ft_active", "ft_heartbeat", "ft_activation",
             "ft_reconnect_timeout", "ssl_password")


def build_parser() -> argparse.ArgumentParser:
    p = EmsArgumentParser(
        "emsfastd", "emsfast broker daemon (TIBCO EMS tibemsd-compatible options).",
        "Exit codes: 0 clean shutdown, 1 configuration error, 2 store error, 3 fenced.")
    p.add_argument("-config", default="tibemsd.conf", metavar="FILE",
                   help="main configuration file (default: tibemsd.conf)")
    for name in OVERRIDES:
        p.add_argument(f"-{name}", metavar=name.upper(),
                       help=f"override '{name}' of the configuration file")
    p.add_argument("-trace", metavar="ITEMS", help="trace items, like log_trace (not saved)")
    p.add_argument("-version", action="store_true", help="print the version and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"emsfastd {__version__}")
        return EXIT_OK
    from emsfast.config.tibemsd import load_tibemsd
    from emsfast.log import log, setup_logging

    setup_logging(None)
    overrides = {name: getattr(args, name) for name in OVERRIDES
                 if getattr(args, name) is not None}
    log.info(f"Reading configuration from '{os.path.abspath(args.config)}'.")
    try:
        config = load_tibemsd(args.config, overrides)
    except ConfigError as exc:
        log.error(str(exc))
        return EXIT_CONFIG
    setup_logging(config.logfile)
    try:
        import uvloop
    except ImportError:
        runner: asyncio.Runner = asyncio.Runner()
    else:
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    with runner:
        return runner.run(_serve(config, args.trace))


async def _serve(config: object, trace: str | None) -> int:
    from emsfast.config.tibemsd import TibemsdConfig
    from emsfast.log import log
    from emsfast.server.server import Server

    assert isinstance(config, TibemsdConfig)
    # Handlers first: a SIGTERM that arrives during start-up still means a
    # clean stop (exit 0), not death by signal.
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        server = Server(config, trace=trace)
        await server.start()
    except ConfigError as exc:
        log.error(str(exc))
        return EXIT_CONFIG
    except (StoreLockedError, FencedError) as exc:
        log.error(f"Server failed to open the store: {exc}")
        return EXIT_FENCED
    except StoreError as exc:
        log.error(f"Server failed to recover state: {exc}")
        return EXIT_STORE
    except OSError as exc:
        log.error(f"Unable to start: {exc}")
        return EXIT_CONFIG
    # Messages in flight are many small long-lived objects; the default young
    # generation threshold makes the collector walk them thousands of times a
    # second. Freeze start-up objects and collect less often.
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    # Either a signal or the server itself (fenced) ends the run.
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(server.shutdown.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in waits:
        w.cancel()
    log.info("Server shutting down.")
    await server.stop()
    log.info("Server is stopped.")
    return server.exit_code


if __name__ == "__main__":
    sys.exit(main())
