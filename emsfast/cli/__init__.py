"""Command-line entry points: emsfastd, emsfast-admin, emsfast-produce, emsfast-consume.

Options are EMS-style single-dash long names (``-server``, ``-queue``). Exit codes:
0 success, 1 a runtime failure (one ``PROG: error: ...`` line on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import Any

__all__ = [
    "EmsArgumentParser", "add_connection_options", "add_ssl_options", "fail",
    "positive_int", "reader_went_away", "run_async", "ssl_options",
]


class EmsArgumentParser(argparse.ArgumentParser):
    """argparse with ``-help`` and no abbreviations, as EMS tools parse options."""

    def __init__(self, prog: str, description: str, epilog: str | None = None) -> None:
        super().__init__(
            prog=prog,
            description=description,
            epilog=epilog,
            add_help=False,
            allow_abbrev=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.add_argument("-help", "-h", "--help", action="help",
                          help="show this help and exit")


def add_ssl_options(parser: argparse.ArgumentParser) -> None:
    """EMS's sample-client TLS options; used with ``ssl://`` server URLs."""
    g = parser.add_argument_group("TLS (ssl:// URLs)")
    g.add_argument("-ssl_trusted", action="append", default=[], metavar="FILE",
                   help="CA certificate(s) trusted to sign the server's (repeatable; "
                        "default: the system CAs)")
    g.add_argument("-ssl_identity", default="", metavar="FILE",
                   help="client certificate (PEM, DER or PKCS#12), for servers that "
                        "require one")
    g.add_argument("-ssl_key", default="", metavar="FILE",
                   help="client private key, if not inside -ssl_identity")
    g.add_argument("-ssl_password", default="", metavar="PW", help="private key password")
    g.add_argument("-ssl_hostname", default="", metavar="NAME",
                   help="name expected in the server certificate (default: the URL's host)")
    g.add_argument("-ssl_noverifyhostname", action="store_true",
                   help="do not check the name in the server certificate")


def ssl_options(args: argparse.Namespace) -> dict[str, Any]:
    """``emsfast.connect`` keyword arguments from ``add_ssl_options``' options."""
    return {
        "ssl_trusted": list(args.ssl_trusted),
        "ssl_identity": args.ssl_identity,
        "ssl_key": args.ssl_key,
        "ssl_password": args.ssl_password,
        "ssl_hostname": args.ssl_hostname,
        "ssl_verify_hostname": not args.ssl_noverifyhostname,
    }


def fail(prog: str, exc: BaseException | str) -> int:
    """Print the one-line error and return exit code 1."""
    text = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    print(f"{prog}: error: {text}", file=sys.stderr, flush=True)
    return 1


def add_connection_options(p: argparse.ArgumentParser, topic_help: str | None = None
                           ) -> None:
    """-server/-user/-password, the -ssl_* options and -queue|-topic (required),
    as EMS's sample clients take them."""
    p.add_argument("-server", default="tcp://localhost:7222", metavar="URLS",
                   help="server URL or FT list tcp://a:7222,tcp://b:7224")
    p.add_argument("-user", default=None, metavar="U")
    p.add_argument("-password", default=None, metavar="P")
    add_ssl_options(p)
    dest = p.add_mutually_exclusive_group(required=True)
    dest.add_argument("-queue", metavar="NAME")
    dest.add_argument("-topic", metavar="NAME", help=topic_help)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def reader_went_away() -> int:
    """stdout's reader closed the pipe (``| head``): stop quietly, as Unix tools do.

    Later writes (and the interpreter's flush at exit) go to /dev/null instead of
    raising BrokenPipeError again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 0


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop when it is installed (stock asyncio otherwise);
    Ctrl-C exits 130, as a shell reports a SIGINT."""
    try:
        try:
            import uvloop
        except ImportError:
            return asyncio.run(main)
        return uvloop.run(main)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return reader_went_away()
