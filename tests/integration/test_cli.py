"""emsfast-produce / emsfast-consume as scripts use them (issue 3 item 5)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from emsfast._testbase.clientutil import mode_is, text_of
from emsfast._testbase.server_process import CliProcess, cli_command, free_port_closed, run_cli

pytestmark = pytest.mark.timeout(90)

QUEUES_CONF = """\
>
climit.>    maxmsgs=1
"""


@pytest.fixture(scope="module")
def server(module_server_factory):
    return module_server_factory(queues=QUEUES_CONF)


def produce(server, *args, input=None):
    rc, out, err = run_cli("produce", ["-server", server.url, *args], input=input)
    assert rc == 0, f"emsfast-produce {args} exited {rc}:\n{err}"
    return out


def consume(server, *args):
    rc, out, err = run_cli("consume", ["-server", server.url, *args])
    assert rc == 0, f"emsfast-consume {args} exited {rc}:\n{err}"
    return out


def test_text_arguments(server, uniq):
    q = uniq("q")
    produce(server, "-queue", q, "one", "two words", "three")
    out = consume(server, "-queue", q, "-count", "3", "-timeout", "10")
    # stdout carries the bodies and nothing else.
    assert out == "one\ntwo words\nthree\n"


def test_stdin_lines(server, uniq):
    q = uniq("q")
    produce(server, "-queue", q, input="alpha\nbeta\ngamma\n")
    out = consume(server, "-queue", q, "-count", "3", "-timeout", "10")
    assert out.splitlines() == ["alpha", "beta", "gamma"]


def test_count_and_size(server, uniq):
    q = uniq("q")
    produce(server, "-queue", q, "-count", "7", "-size", "100")
    out = consume(server, "-queue", q, "-count", "7", "-timeout", "10", "-json")
    bodies = [json.loads(line)["body"] for line in out.splitlines()]
    assert len(bodies) == 7
    assert all(len(b) == 100 for b in bodies)


def test_count_stops_consumer_and_leaves_the_rest(server, uniq):
    q = uniq("q")
    produce(server, "-queue", q, *[f"m{i}" for i in range(5)])
    assert consume(server, "-queue", q, "-count", "2", "-timeout", "10").splitlines() == [
        "m0",
        "m1",
    ]
    assert consume(server, "-queue", q, "-count", "3", "-timeout", "10").splitlines() == [
        "m2",
        "m3",
        "m4",
    ]


def test_typed_property_and_selector(server, uniq):
    q = uniq("q")
    produce(server, "-queue", q, "-property", "n=6", "six")
    # 6 is a number: "n > 7" does not select it (and it stays on the queue) ...
    assert consume(server, "-queue", q, "-selector", "n > 7", "-timeout", "1") == ""
    # ... and "n > 5" does.
    assert (
        consume(server, "-queue", q, "-selector", "n > 5", "-count", "1", "-timeout", "10")
        == "six\n"
    )


def test_json_output(server, uniq):
    q = uniq("q")
    produce(
        server,
        "-queue",
        q,
        "-priority",
        "7",
        "-property",
        "n=6",
        "-property",
        "f=2.5",
        "-property",
        "ok=true",
        "-property",
        "s=hello",
        "body text",
    )
    out = consume(server, "-queue", q, "-count", "1", "-timeout", "10", "-json")
    lines = out.splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert set(obj) == {
        "id",
        "destination",
        "body",
        "properties",
        "redelivered",
        "delivery_count",
        "priority",
    }
    assert obj["body"] == "body text"
    assert obj["properties"] == {"n": 6, "f": 2.5, "ok": True, "s": "hello"}
    assert obj["redelivered"] is False
    assert obj["delivery_count"] == 1
    assert obj["priority"] == 7
    assert str(obj["id"]).startswith("ID:")
    assert q in str(obj["destination"])


def test_timeout_is_the_idle_gap_and_output_is_flushed_per_message(server, uniq):
    q = uniq("q")
    consumer = CliProcess("consume", ["-server", server.url, "-queue", q, "-timeout", "3"])
    try:
        # Each body shows up on stdout while the consumer still runs, and the
        # consumer outlives its -timeout as long as messages keep coming.
        started = time.monotonic()
        for i in range(4):
            produce(server, "-queue", q, f"m{i}")
            assert consumer.wait_lines(i + 1)[-1] == f"m{i}"
            assert consumer.proc.poll() is None
            if i < 3:
                time.sleep(1.0)  # gaps shorter than -timeout that add up to more
        assert time.monotonic() - started > 3
        rc, out, _ = consumer.wait(timeout=30)
        assert rc == 0
        assert out.splitlines() == ["m0", "m1", "m2", "m3"]
    finally:
        consumer.kill()


def test_empty_queue_times_out_with_exit_0(server, uniq):
    assert consume(server, "-queue", uniq("q"), "-timeout", "1") == ""


def test_topic_produce_consume(server, uniq):
    topic = uniq("t")
    consumer = CliProcess(
        "consume", ["-server", server.url, "-topic", topic, "-count", "1", "-timeout", "30"]
    )
    try:
        # A topic keeps nothing for late subscribers: publish until the consumer
        # (which may still be starting) prints one.
        deadline = time.monotonic() + 30
        while consumer.proc.poll() is None and time.monotonic() < deadline:
            produce(server, "-topic", topic, "-delivery", "non_persistent", "hello")
            try:
                consumer.wait_lines(1, timeout=1)
                break
            except AssertionError:
                continue
        rc, out, err = consumer.wait(timeout=30)
        assert rc == 0, err
        assert out == "hello\n"
    finally:
        consumer.kill()


def test_ft_url_list_skips_a_dead_server(server, uniq):
    q = uniq("q")
    urls = f"tcp://127.0.0.1:{free_port_closed()},{server.url}"
    rc, _, err = run_cli("produce", ["-server", urls, "-queue", q, "via-list"])
    assert rc == 0, err
    rc, out, err = run_cli(
        "consume", ["-server", urls, "-queue", q, "-count", "1", "-timeout", "10"]
    )
    assert rc == 0, err
    assert out == "via-list\n"


def test_unreachable_server_exits_nonzero():
    url = f"tcp://127.0.0.1:{free_port_closed()}"
    rc, out, err = run_cli("produce", ["-server", url, "-queue", "q", "x"])
    assert rc != 0
    assert out == ""
    assert err.strip()
    rc, out, err = run_cli("consume", ["-server", url, "-queue", "q", "-timeout", "1"])
    assert rc != 0
    assert out == ""
    assert err.strip()


def test_rejected_send_exits_nonzero(server, uniq):
    q = uniq("climit")
    rc, _, err = run_cli("produce", ["-server", server.url, "-queue", q, "first", "second"])
    assert rc != 0
    assert "maxmsgs" in err
    assert consume(server, "-queue", q, "-count", "1", "-timeout", "10") == "first\n"


@pytest.mark.parametrize(
    "option, mode", [((), "persistent"), (("-delivery", "non_persistent"), "non_persistent")]
)
def test_delivery_mode(server, uniq, option, mode):
    """The default delivery mode is persistent, as in JMS."""
    import emsfast.blocking

    q = uniq("q")
    produce(server, "-queue", q, *option, "dm")
    with emsfast.blocking.connect(server.url) as conn:
        msg = conn.session().consumer(emsfast.Queue(q)).receive(timeout=10)
    assert msg is not None and text_of(msg) == "dm"
    assert mode_is(msg.delivery_mode, mode)


def test_durable_subscription(server, uniq):
    topic, durable, client_id = uniq("t"), "cli_durable", uniq("cid").replace(".", "_")
    sub = ["-topic", topic, "-durable", durable, "-clientid", client_id]
    # First run creates the durable subscription and finds nothing.
    assert consume(server, *sub, "-timeout", "1") == ""
    produce(server, "-topic", topic, "kept1", "kept2")
    # Offline meanwhile; the second run gets what was published.
    assert consume(server, *sub, "-count", "2", "-timeout", "10") == "kept1\nkept2\n"


def test_user_and_password_accepted(server, uniq):
    q = uniq("q")
    produce(server, "-user", "admin", "-password", "", "-queue", q, "with-user")
    out = consume(server, "-user", "admin", "-queue", q, "-count", "1", "-timeout", "10")
    assert out == "with-user\n"


@pytest.mark.parametrize("tool", ["produce", "consume"])
def test_usage_error_exits_nonzero(server, tool):
    # Neither -queue nor -topic.
    rc, out, err = run_cli(tool, ["-server", server.url])
    assert rc != 0
    assert out == ""
    assert "-queue" in err or "-topic" in err, err


def test_consumer_piped_into_head_stops_quietly(server, uniq):
    """`emsfast-consume ... | head -1`: the reader leaves; no traceback, exit 0."""
    q = uniq("q")
    rc, _out, err = run_cli("produce", ["-server", server.url, "-queue", q,
                                        *[f"m{i}" for i in range(50)]])
    assert rc == 0, err
    proc = subprocess.Popen(
        cli_command("consume", ["-server", server.url, "-queue", q, "-timeout", "5"]),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"m0\n"
        proc.stdout.close()                 # what `head -1` does after one line
        _, err_bytes = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err_bytes
    assert b"Traceback" not in err_bytes and b"Broken pipe" not in err_bytes
