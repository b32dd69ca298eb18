"""ns per frame for the Cython codec (``emsfast._core.framing`` and ``.message``).

Run alone with ``python -m bench.micro_framing``; ``python -m bench run`` includes it.
Each figure is the median over repeats of (batch time / frames in the batch), so
per-call overhead of ``take()``/``feed()`` is spread the way a busy connection does.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from bench.common import median
from emsfast._core.framing import FrameDecoder, FrameEncoder, parse_deliver, parse_publish
from emsfast._core.message import decode_message, encode_message, peek_message
from emsfast.consts import BODY_TEXT, NON_PERSISTENT, PUBLISH_CONFIRM

MAX_FRAME = 8 * 1024 * 1024 + 64 * 1024
READ_CHUNK = 64 * 1024  # a typical socket read under load


def _blob(size: int) -> bytes:
    return encode_message(BODY_TEXT, NON_PERSISTENT, 4, int(time.time() * 1000), 0,
                          {"dest": "q:bench.queue"}, None, b"x" * size)


def _time_per_item(fn: Callable[[], Any], items: int, repeats: int) -> dict[str, float]:
    fn()  # warm caches and the allocator
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / items)
    return {"ns": median(samples), "best_ns": min(samples)}


def run(frames: int = 100_000, size: int = 128, repeats: int = 7) -> dict[str, Any]:
    blob = _blob(size)
    enc = FrameEncoder()
    for i in range(frames):
        enc.deliver(7, 1, i, i, blob)
    deliver_stream = enc.take()
    for i in range(frames):
        enc.publish(3, i, 0, blob)
    publish_stream = enc.take()
    deliver_body = FrameDecoder(MAX_FRAME).feed(deliver_stream[:len(deliver_stream) // frames])
    one_deliver = deliver_body[0][2]
    one_publish = FrameDecoder(MAX_FRAME).feed(publish_stream[:len(publish_stream) // frames])[0][2]
    chunks = [deliver_stream[i:i + READ_CHUNK]
              for i in range(0, len(deliver_stream), READ_CHUNK)]

    def encode_publish() -> None:
        e = FrameEncoder()
        for i in range(frames):
            e.publish(3, i, PUBLISH_CONFIRM, blob)
        e.take()

    def encode_deliver() -> None:
        e = FrameEncoder()
        for i in range(frames):
            e.deliver(7, 1, i, i, blob)
        e.take()

    def decode_one_buffer() -> None:
        FrameDecoder(MAX_FRAME).feed(deliver_stream)

    def decode_chunked() -> None:
        d = FrameDecoder(MAX_FRAME)
        for c in chunks:
            d.feed(c)

    def parse_deliver_body() -> None:
        for _ in range(frames):
            parse_deliver(one_deliver)

    def parse_publish_body() -> None:
        for _ in range(frames):
            parse_publish(one_publish)

    def message_encode() -> None:
        for _ in range(frames):
            encode_message(BODY_TEXT, NON_PERSISTENT, 4, 0, 0, {"dest": "q:bench.queue"},
                           None, b"x" * size)

    def message_decode() -> None:
        for _ in range(frames):
            decode_message(blob)

    def message_peek() -> None:
        for _ in range(frames):
            peek_message(blob)

    cases: dict[str, Callable[[], None]] = {
        "encode_publish": encode_publish,
        "encode_deliver": encode_deliver,
        "decode_deliver_one_buffer": decode_one_buffer,
        f"decode_deliver_{READ_CHUNK // 1024}k_chunks": decode_chunked,
        "parse_deliver_body": parse_deliver_body,
        "parse_publish_body": parse_publish_body,
        "message_encode": message_encode,
        "message_decode": message_decode,
        "message_peek": message_peek,
    }
    results = {name: _time_per_item(fn, frames, repeats) for name, fn in cases.items()}
    return {
        "parameters": {"frames": frames, "message_body_bytes": size, "blob_bytes": len(blob),
                       "frame_bytes": len(deliver_stream) // frames, "repeats": repeats,
                       "read_chunk_bytes": READ_CHUNK},
        "ns_per_frame": results,
    }


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'operation':<30} {'ns/frame':>10} {'best':>10}"]
    for name, r in result["ns_per_frame"].items():
        lines.append(f"{name:<30} {r['ns']:>10.1f} {r['best_ns']:>10.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.micro_framing")
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    a = p.parse_args(argv)
    result = run(a.frames, repeats=a.repeats)
    print(json.dumps(result, indent=2) if a.json else format_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
