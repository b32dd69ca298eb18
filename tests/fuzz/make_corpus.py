"""Write the seed corpus of the atheris harnesses: ``python tests/fuzz/make_corpus.py``.

Each target gets a few small valid inputs in its harness's input format, built
with the project's own encoders (and the sample config in conf/standalone), so
the fuzzer starts from inputs that reach past the first checks. The output is
committed; rerun this after a format change and commit what changed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import msgpack

from emsfast._core.framing import FrameEncoder
from emsfast.client.messages import (
    BytesMessage,
    MapMessage,
    Message,
    Queue,
    StreamMessage,
    TextMessage,
    Topic,
)
from emsfast.consts import FRAME_HELLO, FRAME_REPLY, PERSISTENT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from atheris_config import KINDS as CONFIG_KINDS  # noqa: E402
from atheris_config import URLS as CONFIG_URLS  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS = HERE / "corpus"
FRAME_LIMIT_1MB = 3  # atheris_frames.LIMITS index

MESSAGES = {
    "text": TextMessage("hello", {"n": 6, "s": "x"}, correlation_id="c-1", jms_type="order"),
    "bytes": BytesMessage(b"\x00\x01\xff"),
    "map": MapMessage({"a": 1, "b": [1.5, {"c": "d"}], "e": b"\x00", "f": None}),
    "stream": StreamMessage([1, "two", 3.0, True]),
    "headers-only": Message({"t": True, "f": 0.5, "big": 2**63 - 1}, reply_to=Topic("reply.t")),
}

SELECTORS = {
    "compare": "n > 5 AND s = 'x'",
    "like": "s LIKE 'ab!%%' ESCAPE '!' OR s NOT LIKE '_b%'",
    "in-null": "s IN ('x', 'y') AND n IS NOT NULL",
    "between-arith": "-n * 2 + 1.5e1 / 3 NOT BETWEEN 0x1F AND 100",
    "headers": "JMSPriority >= 4 AND JMSDeliveryMode = 'PERSISTENT' AND NOT (JMSType <> 'order')",
}

CONFIG_EXTRA = {
    "durables.conf": 'topic.sample dur1 clientid=c1,nolocal,selector="n > 5"\n',
    "stores.conf": "[$sys.failsafe]\n  type = file\n  file = sync-msgs.db\n  mode = sync\n",
}
URLS = "tcp://a:7222,ssl://[::1]:7243+tcp://7224"


def frames() -> dict[str, bytes]:
    blob = MESSAGES["text"].encode(PERSISTENT, 4, 1_700_000_000_000, 0, Queue("orders"))
    out = {}
    enc = FrameEncoder()
    enc.control(FRAME_HELLO, {"version": 1, "user": "admin", "password": ""})
    enc.publish(1, 1, 1, blob)
    enc.heartbeat()
    out["client"] = enc.take()
    enc.control(FRAME_REPLY, {"rid": 1, "ok": True})
    enc.deliver(3, 1, 9, 77, blob)
    enc.confirm(1, [(1, 77), (2, 78)])
    enc.send_fail(1, 3, 5, "message too large")
    out["server"] = enc.take()
    enc.credit(3, 10)
    enc.ack(2, [9, 10, 11])
    out["credit-ack"] = enc.take()
    # Step 3: fed three bytes at a time, so frames straddle chunks.
    return {name: bytes([FRAME_LIMIT_1MB, 3 if name == "server" else 0]) + data
            for name, data in out.items()}


def messages() -> dict[str, bytes]:
    return {name: msg.encode(PERSISTENT, 4, 1_700_000_000_000, 0, Queue("q.orders"))
            for name, msg in MESSAGES.items()}


def selectors() -> dict[str, bytes]:
    props = msgpack.packb({"n": 6, "s": "x", "t": True}, use_bin_type=True)
    return {name: text.encode() + b"\x00" + props for name, text in SELECTORS.items()}


def configs() -> dict[str, bytes]:
    out = {}
    for kind, (name, _) in enumerate(CONFIG_KINDS):
        path = ROOT / "conf" / "standalone" / name
        if name in CONFIG_EXTRA:
            text = CONFIG_EXTRA[name]
        else:
            lines = path.read_text().splitlines()
            text = "".join(line + "\n" for line in lines
                           if line.strip() and not line.lstrip().startswith("#"))
        out[f"{kind}-{name}"] = bytes([kind]) + text.encode()
    out["urls"] = bytes([CONFIG_URLS]) + URLS.encode()
    return out


def main() -> None:
    for target, seeds in (("frames", frames()), ("messages", messages()),
                          ("selector", selectors()), ("config", configs())):
        folder = CORPUS / target
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, data in seeds.items():
            (folder / f"seed-{name}").write_bytes(data)
        print(f"{folder.relative_to(ROOT)}: {len(seeds)} files, "
              f"{sum(map(len, seeds.values()))} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
