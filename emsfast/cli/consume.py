"""emsfast-consume: print messages from a queue or topic (EMS sample-client style)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from emsfast.cli import (
    EmsArgumentParser,
    add_connection_options,
    fail,
    positive_int,
    run_async,
    ssl_options,
)

PROG = "emsfast-consume"

_EPILOG = """\
output:
  stdout carries only message bodies, one per line, each flushed as it arrives:
  text as is, BytesMessage as <N bytes>, map and stream bodies as JSON. With -json,
  one JSON object per message with keys id, destination, body, properties,
  redelivered, delivery_count, priority (bytes in base64, plus
  "body_encoding": "base64" for a BytesMessage). Diagnostics go to stderr.

stopping:
  after -count N messages, or when no message arrived for -timeout SECS (an idle
  gap, not a total); without either, until interrupted.

defaults:
  -server tcp://localhost:7222; no -user: anonymous, which a server accepts while
  authorization is disabled (as EMS's sample clients). -ack auto; with client or
  explicit each message is acknowledged after it is printed.

exit status: 0 done, 1 connection/authentication/selector error, 2 usage error.
"""


def build_parser() -> argparse.ArgumentParser:
    p = EmsArgumentParser(PROG, "Receive messages from an emsfast (EMS-compatible) server.",
                          _EPILOG)
    add_connection_options(p, topic_help="may use wildcards * and >")
    p.add_argument("-durable", metavar="NAME", help="durable subscription (needs -clientid)")
    p.add_argument("-clientid", metavar="ID", help="connection client id")
    p.add_argument("-selector", metavar="EXPR", help="JMS message selector")
    p.add_argument("-ack", default="auto",
                   choices=("auto", "client", "dups_ok", "explicit", "none"))
    p.add_argument("-count", type=positive_int, metavar="N", help="stop after N messages")
    p.add_argument("-timeout", type=_non_negative_float, metavar="SECS",
                   help="stop when no message arrived for SECS")
    p.add_argument("-json", action="store_true", help="one JSON object per message")
    return p


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text}")
    return value


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.durable is not None:
        if args.topic is None:
            parser.error("-durable needs -topic")
        if args.clientid is None:
            parser.error("-durable needs -clientid")
    return args


async def consume(args: argparse.Namespace) -> int:
    import emsfast
    from emsfast.client.render import json_line, plain_line
    from emsfast.errors import EmsfastError

    dest = emsfast.Queue(args.queue) if args.queue is not None else emsfast.Topic(args.topic)
    render = json_line if args.json else plain_line
    acknowledge = args.ack in ("client", "explicit")
    out = sys.stdout
    try:
        conn = await emsfast.connect(args.server, user=args.user, password=args.password,
                                     client_id=args.clientid, **ssl_options(args))
    except BrokenPipeError:
        raise                   # stdout's reader left: run_async ends quietly
    except (EmsfastError, OSError) as exc:
        return fail(PROG, exc)
    try:
        consumer = conn.session(ack_mode=args.ack).consumer(
            dest, selector=args.selector, durable=args.durable)
        received = 0
        while args.count is None or received < args.count:
            msg = await consumer.receive(timeout=args.timeout)
            if msg is None:
                break
            out.write(render(msg) + "\n")
            out.flush()
            if acknowledge:
                await msg.acknowledge()
            received += 1
    except BrokenPipeError:
        raise                   # stdout's reader left: run_async ends quietly
    except (EmsfastError, OSError) as exc:
        return fail(PROG, exc)
    finally:
        await conn.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_async(consume(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
