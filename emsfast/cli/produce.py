"""emsfast-produce: send text messages to a queue or topic (EMS sample-client style)."""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

from emsfast.cli import (
    EmsArgumentParser,
    add_connection_options,
    fail,
    positive_int,
    run_async,
    ssl_options,
)

PROG = "emsfast-produce"

_EPILOG = """\
messages:
  each TEXT argument is one message; with none, each line of stdin is one;
  -count N (and/or -size BYTES) sends N generated messages of BYTES characters.

defaults:
  -server tcp://localhost:7222; no -user: anonymous, which a server accepts while
  authorization is disabled (as EMS's sample clients). -delivery persistent (as JMS):
  the exit status is 0 only when the server confirmed every message.

exit status: 0 all sent, 1 connection/authentication/send error, 2 usage error.
"""


def build_parser() -> argparse.ArgumentParser:
    p = EmsArgumentParser(PROG, "Send messages to an emsfast (EMS-compatible) server.", _EPILOG)
    add_connection_options(p)
    p.add_argument("-delivery", default="persistent",
                   choices=("persistent", "non_persistent", "reliable"))
    p.add_argument("-count", type=positive_int, metavar="N", help="send N generated messages")
    p.add_argument("-size", type=_non_negative, metavar="BYTES",
                   help="size of each generated message (default 100)")
    p.add_argument("-property", action="append", default=[], metavar="KEY=VALUE",
                   help="a property on every message; integers, floats and true/false are "
                        "typed so selectors compare them (repeatable)")
    p.add_argument("-priority", type=int, default=4, choices=range(10), metavar="P",
                   help="JMS priority 0-9 (default 4)")
    p.add_argument("-ttl", type=_non_negative, default=0, metavar="MS",
                   help="time to live in milliseconds (default 0: never expires)")
    p.add_argument("text", nargs="*", metavar="TEXT")
    return p


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.text and (args.count is not None or args.size is not None):
        parser.error("give TEXT arguments or -count/-size, not both")
    from emsfast.client.messages import parse_property
    from emsfast.errors import InvalidError

    try:
        args.properties = dict(parse_property(p) for p in args.property)
    except InvalidError as exc:
        parser.error(str(exc))
    return args


def generated_text(index: int, size: int) -> str:
    """Message ``index`` (from 1) padded with dots to exactly ``size`` characters."""
    head = f"message {index}"
    return head[:size] if size <= len(head) else head + "." * (size - len(head))


async def _stdin_lines() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    stream = sys.stdin.buffer
    # read1 returns what is available (a line on a tty, up to 64 KiB from a file).
    read = stream.read1 if isinstance(stream, io.BufferedReader) else stream.readline
    rest = b""
    number = 0
    while True:
        chunk = await loop.run_in_executor(None, read, 65536)
        if not chunk:
            break
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for raw in lines:
            number += 1
            yield _decode_line(raw, number)
    if rest:
        yield _decode_line(rest, number + 1)


def _decode_line(raw: bytes, number: int) -> str:
    try:
        return raw.removesuffix(b"\r").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"stdin line {number} is not UTF-8: {exc}") from None


async def _texts(args: argparse.Namespace) -> AsyncIterator[str]:
    if args.text:
        for text in args.text:
            yield text
    elif args.count is not None or args.size is not None:
        size = 100 if args.size is None else args.size
        for i in range(1, (args.count or 1) + 1):
            yield generated_text(i, size)
    else:
        async for line in _stdin_lines():
            yield line


async def produce(args: argparse.Namespace) -> int:
    import emsfast
    from emsfast.errors import EmsfastError

    props: dict[str, Any] = args.properties
    dest = emsfast.Queue(args.queue) if args.queue is not None else emsfast.Topic(args.topic)
    try:
        conn = await emsfast.connect(args.server, user=args.user, password=args.password,
                                     **ssl_options(args))
    except (EmsfastError, OSError) as exc:
        return fail(PROG, exc)
    try:
        producer = conn.session().producer(dest)
        async for text in _texts(args):
            await producer.send_async(emsfast.TextMessage(text, properties=props),
                                      delivery_mode=args.delivery, priority=args.priority,
                                      ttl=args.ttl)
        # Waits for every confirm, then a round trip so that non_persistent
        # failures have arrived too; raises the first one.
        await producer.flush()
    except (EmsfastError, OSError, ValueError) as exc:
        return fail(PROG, exc)
    finally:
        await conn.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_async(produce(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
