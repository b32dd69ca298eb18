"""Argument parsing of emsfast-produce / emsfast-consume / emsfast-admin."""

import pytest

from emsfast.cli import admin, consume, produce


def test_produce_defaults():
    args = produce.parse_args(["-queue", "q", "hello", "two words"])
    assert args.server == "tcp://localhost:7222"
    assert args.user is None and args.password is None
    assert args.queue == "q" and args.topic is None
    assert args.delivery == "persistent"
    assert (args.priority, args.ttl) == (4, 0)
    assert args.text == ["hello", "two words"]
    assert args.properties == {}


def test_produce_options():
    args = produce.parse_args([
        "-server", "tcp://a:7222,tcp://b:7224", "-user", "admin", "-password", "",
        "-topic", "t.x", "-delivery", "non_persistent", "-count", "5", "-size", "10",
        "-property", "n=6", "-property", "f=2.5", "-property", "ok=true", "-property", "s=x",
        "-priority", "9", "-ttl", "1000",
    ])
    assert args.server == "tcp://a:7222,tcp://b:7224"
    assert (args.user, args.password, args.topic) == ("admin", "", "t.x")
    assert (args.delivery, args.count, args.size) == ("non_persistent", 5, 10)
    assert args.properties == {"n": 6, "f": 2.5, "ok": True, "s": "x"}
    assert (args.priority, args.ttl) == (9, 1000)


@pytest.mark.parametrize(
    "argv",
    [
        [],                                        # no destination
        ["-queue", "q", "-topic", "t"],            # both
        ["-queue", "q", "-count", "2", "text"],    # TEXT and -count
        ["-queue", "q", "-priority", "10"],
        ["-queue", "q", "-count", "0"],
        ["-queue", "q", "-ttl", "-1"],
        ["-queue", "q", "-delivery", "sometimes"],
        ["-queue", "q", "-property", "novalue"],
    ],
)
def test_produce_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        produce.parse_args(argv)
    assert info.value.code == 2
    assert capsys.readouterr().out == ""


def test_generated_text_has_exact_size():
    assert produce.generated_text(1, 20) == "message 1..........."
    assert len(produce.generated_text(12345, 100)) == 100
    assert produce.generated_text(3, 4) == "mess"
    assert produce.generated_text(3, 0) == ""


def test_consume_defaults_and_options():
    args = consume.parse_args(["-queue", "q"])
    assert (args.ack, args.count, args.timeout, args.json) == ("auto", None, None, False)
    args = consume.parse_args([
        "-topic", "prices.>", "-durable", "d", "-clientid", "c", "-selector", "n > 5",
        "-ack", "client", "-count", "3", "-timeout", "1.5", "-json",
    ])
    assert (args.topic, args.durable, args.clientid) == ("prices.>", "d", "c")
    assert (args.selector, args.ack, args.count, args.timeout, args.json) == (
        "n > 5", "client", 3, 1.5, True)


@pytest.mark.parametrize(
    "argv",
    [
        ["-topic", "t", "-durable", "d"],                     # durable needs -clientid
        ["-queue", "q", "-durable", "d", "-clientid", "c"],   # durable needs -topic
        ["-queue", "q", "-ack", "sometimes"],
        ["-queue", "q", "-timeout", "-1"],
        ["-queue", "q", "-count", "0"],
    ],
)
def test_consume_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as info:
        consume.parse_args(argv)
    assert info.value.code == 2


def test_help_uses_ems_style_option(capsys):
    with pytest.raises(SystemExit) as info:
        consume.parse_args(["-help"])
    assert info.value.code == 0
    assert "-selector" in capsys.readouterr().out


def test_admin_options():
    args = admin.build_parser().parse_args(
        ["-server", "tcp://h:7222", "-user", "u", "-password", "p", "-script", "f", "-ignore"])
    assert (args.server, args.user, args.password, args.script, args.ignore) == (
        "tcp://h:7222", "u", "p", "f", True)
    defaults = admin.build_parser().parse_args([])
    assert (defaults.user, defaults.password, defaults.ignore) == ("admin", None, False)



def test_admin_mangle(capsys):
    from emsfast.auth.passwords import unmangle

    assert admin.main(["-mangle", "mySecret"]) == 0
    assert unmangle(capsys.readouterr().out.strip()) == "mySecret"
