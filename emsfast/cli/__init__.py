"""Command-line entry points: emsfastd, emsfast-admin, emsfast-produce, emsfast-consume.

Options are EMS-style single-dash long names (``-server``, ``-queue``). Exit codes:
0 success, 1 a runtime failure (one ``PROG: error: ...`` line on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from typing import Any

__all__ = ["EmsArgumentParser", "fail", "run_async"]


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


def fail(prog: str, exc: BaseException | str) -> int:
    """Print the one-line error and return exit code 1."""
    text = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    print(f"{prog}: error: {text}", file=sys.stderr, flush=True)
    return 1


def run_async(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` on uvloop when it is installed (stock asyncio otherwise)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
