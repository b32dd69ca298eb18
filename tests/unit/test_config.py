"""tibemsd.conf parsing: line grammar, value parsers, URLs, parameters, sample configs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from emsfast.config.destinations import load_destinations
from emsfast.config.syntax import (
    MAX_LINE_LENGTH,
    parse_bool,
    parse_int,
    parse_seconds,
    parse_size,
    parse_time_ms,
    read_assignments,
    read_lines,
    split_list,
    unquote,
)
from emsfast.config.tibemsd import COMMAND_LINE, load_tibemsd
from emsfast.config.urls import ListenURL, parse_url, parse_url_groups, parse_url_list
from emsfast.errors import ConfigError, InvalidError

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "conf" / "standalone"


def write(tmp_path: Path, text: str, name: str = "tibemsd.conf") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# ---- line grammar ----------------------------------------------------------


def test_read_lines_skips_comments_and_blanks(tmp_path: Path) -> None:
    path = write(tmp_path, "\ufeff# comment\n\n   ; also comment\n  a = 1\r\nb=2\n")
    lines = read_lines(path)
    assert [(ln.number, ln.raw, ln.text) for ln in lines] == [
        (4, "  a = 1", "a = 1"),
        (5, "b=2", "b=2"),
    ]
    assert lines[0].where == f"{path}:4"


def test_read_lines_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.conf")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: file not found")) as exc:
        read_lines(path)
    assert exc.value.path == path and exc.value.line is None


def test_read_lines_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_lines(tmp_path)  # a directory


def test_line_length_limit(tmp_path: Path) -> None:
    ok = "a = " + "x" * (MAX_LINE_LENGTH - 4)
    path = write(tmp_path, f"{ok}\n")
    assert len(read_assignments(path)[0].value) == MAX_LINE_LENGTH - 4
    path = write(tmp_path, f"# x\n{ok}x\n")
    with pytest.raises(ConfigError, match=r":2: line longer than 256000") as exc:
        read_lines(path)
    assert exc.value.line == 2


def test_assignments_keep_location_and_unquote(tmp_path: Path) -> None:
    path = write(tmp_path, 'Server = EMS-X\nlog_trace = "DEFAULT, +CONNECT"\nempty =\n')
    items = read_assignments(path)
    assert [(i.key, i.value, i.line) for i in items] == [
        ("server", "EMS-X", 1),
        ("log_trace", "DEFAULT, +CONNECT", 2),
        ("empty", "", 3),
    ]
    assert items[1].raw == 'log_trace = "DEFAULT, +CONNECT"'
    assert items[0].path == path and items[0].where == f"{path}:1"


@pytest.mark.parametrize("line", ["just words", "= value", "9x = 1"])
def test_malformed_line(tmp_path: Path, line: str) -> None:
    path = write(tmp_path, f"server = a\n{line}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:2: expected 'name = value'")):
        read_assignments(path)


def test_unterminated_quote_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, 'server = "abc\n')
    with pytest.raises(ConfigError, match=re.escape(f"{path}:1: server: unterminated quote")):
        read_assignments(path)


def test_unquote_and_split_list() -> None:
    assert unquote('"a, b"') == "a, b"
    assert unquote("plain") == "plain"
    with pytest.raises(ValueError):
        unquote('"')
    assert split_list(" a, b ,,c ") == ["a", "b", "c"]
    assert split_list('x,sel="a, b",y') == ["x", 'sel="a, b"', "y"]
    assert split_list("") == []
    with pytest.raises(ValueError, match="unterminated quote"):
        split_list('a,"b')


@pytest.mark.parametrize("word", ["enable", "Enabled", "TRUE", "yes", "on"])
def test_bool_true(word: str) -> None:
    assert parse_bool(word) is True


@pytest.mark.parametrize("word", ["disable", "disabled", "False", "no", "OFF"])
def test_bool_false(word: str) -> None:
    assert parse_bool(word) is False


def test_bool_bad() -> None:
    with pytest.raises(ValueError, match="expected enabled or disabled, got 'maybe'"):
        parse_bool("maybe")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("100", 100),
        ("512KB", 512 * 1024),
        ("10MB", 10 * 1024**2),
        ("2GB", 2 * 1024**3),
        ("8mb", 8 * 1024**2),
        ("3 kb", 3072),
        ("7b", 7),
        ("1g", 1024**3),
    ],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MB", "-1MB", "1.5MB", "10TB", "ten"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="expected a size such as 10MB"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("500msec", 500),
        ("30sec", 30_000),
        ("10min", 600_000),
        ("2hour", 7_200_000),
        ("1day", 86_400_000),
        ("45", 45_000),
        ("5 SEC", 5000),
        ("0", 0),
    ],
)
def test_times(text: str, ms: int) -> None:
    assert parse_time_ms(text) == ms


@pytest.mark.parametrize("text", ["", "sec", "10 fortnights", "-1", "1.5sec"])
def test_bad_times(text: str) -> None:
    with pytest.raises(ValueError, match="expected a time"):
        parse_time_ms(text)


def test_seconds_and_ints() -> None:
    assert parse_seconds("3") == 3
    assert parse_seconds("500msec") == 0.5
    with pytest.raises(ValueError, match="expected seconds, got 'three'"):
        parse_seconds("three")
    assert parse_int(" 42 ") == 42
    with pytest.raises(ValueError, match="expected a whole number"):
        parse_int("4x")
    with pytest.raises(ValueError, match="expected a number >= 0"):
        parse_int("-1")


# ---- URLs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("tcp://7222", ListenURL("tcp", "", 7222)),
        ("tcp://host:7224", ListenURL("tcp", "host", 7224)),
        ("TCP://host", ListenURL("tcp", "host", 7222)),
        ("ssl://10.0.0.1:7243", ListenURL("ssl", "10.0.0.1", 7243)),
        ("tcp://[::1]:7222", ListenURL("tcp", "::1", 7222)),
        ("tcp://[fe80::1%eth0]", ListenURL("tcp", "fe80::1%eth0", 7222)),
        ("tcp://127.0.0.1:0", ListenURL("tcp", "127.0.0.1", 0)),
        ("localhost:7222", ListenURL("tcp", "localhost", 7222)),
        (" tcp://my-host.example.com:1 ", ListenURL("tcp", "my-host.example.com", 1)),
    ],
)
def test_parse_url(text: str, url: ListenURL) -> None:
    assert parse_url(text) == url


def test_url_str_round_trips() -> None:
    for text in ("tcp://7222", "tcp://h:1", "ssl://[::1]:7243"):
        assert str(parse_url(text)) == text
    assert parse_url("ssl://h").tls and not parse_url("tcp://h").tls


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("http://h:1", "scheme must be tcp or ssl"),
        ("tcp://", "missing host or port"),
        ("tcp://h:99999", "port must be 0..65535"),
        ("tcp://h:x", "port must be 0..65535"),
        ("tcp://h:", "expected host:port"),
        ("tcp://::1:7222", "IPv6 addresses must be in brackets"),
        ("tcp://[::1", "missing ']'"),
        ("tcp://[nope]:1", "bad IPv6 address"),
        ("tcp://[::1]x", "expected ':port'"),
        ("tcp://[::1]:", "missing port"),
        ("tcp://bad host:1", "bad host name"),
        ("tcp://h/path:1", "bad host name"),
    ],
)
def test_bad_urls(text: str, problem: str) -> None:
    with pytest.raises(InvalidError, match=re.escape(problem)):
        parse_url(text)


def test_url_lists_and_groups() -> None:
    assert parse_url_list("tcp://a:7222, tcp://b:7224") == [
        ListenURL("tcp", "a", 7222),
        ListenURL("tcp", "b", 7224),
    ]
    assert parse_url_groups("tcp://a,tcp://b+tcp://c") == [
        [ListenURL("tcp", "a", 7222), ListenURL("tcp", "b", 7222)],
        [ListenURL("tcp", "c", 7222)],
    ]
    for bad in ("", "tcp://a,", ",tcp://a"):
        with pytest.raises(InvalidError, match="empty URL"):
            parse_url_list(bad)


# ---- tibemsd.conf ------------------------------------------------------------


def test_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "# nothing set\n")
    cfg = load_tibemsd(path)
    assert cfg.server == "EMS-SERVER" and cfg.password == ""
    assert cfg.listen == ["tcp://7222"]
    assert cfg.listen_urls == [ListenURL("tcp", "", 7222)]
    assert cfg.authorization is False
    assert cfg.store == "datastore" and cfg.logfile is None
    assert (cfg.ft_heartbeat, cfg.ft_activation, cfg.ft_reconnect_timeout) == (3, 10, 60)
    assert cfg.handshake_timeout == 3 and cfg.max_msg_size == 0 and cfg.max_connections == 0
    assert cfg.ft_active == "" and cfg.ft_active_urls == []
    assert cfg.startup_abort_list == frozenset()
    assert cfg.queues == str(tmp_path / "queues.conf")
    assert cfg.acl_list == str(tmp_path / "acl.conf")
    assert cfg.source == {} and cfg.warnings == [] and not cfg.is_set("queues")


def test_abuse_limits(tmp_path: Path) -> None:
    """The emsfast extensions of docs/operations.md "Limits against abuse"."""
    cfg = load_tibemsd(write(tmp_path, "# nothing set\n"))
    assert cfg.max_preauth_bytes == 64 * 1024
    assert cfg.max_selector_length == 4096
    assert cfg.max_client_pending_bytes == 64 * 1024**2
    path = write(
        tmp_path,
        "max_preauth_bytes = 8KB\nmax_selector_length = 0\nmax_client_pending_bytes = 16MB\n",
    )
    cfg = load_tibemsd(path)
    assert cfg.max_preauth_bytes == 8 * 1024
    assert cfg.max_selector_length == 0         # no limit
    assert cfg.max_client_pending_bytes == 16 * 1024**2
    assert cfg.source["max_client_pending_bytes"] == (path, 3)
    cfg = load_tibemsd(write(tmp_path, "max_client_pending_bytes = 0\n"))
    assert cfg.max_client_pending_bytes == 0    # no limit
    cfg = load_tibemsd(write(tmp_path, "max_preauth_bytes = 1KB\n"))
    assert cfg.max_preauth_bytes == 1024        # the smallest a login fits in


def test_typed_values_and_sources(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "server = EMS-A\n"
        "password = s3cret\n"
        "listen = tcp://7222\n"
        "listen = ssl://host:7243\n"
        "authorization = enabled\n"
        "max_msg_size = 8MB\n"
        "max_msg_memory = 512MB\n"
        "max_connections = 100\n"
        "ft_active = tcp://peer:7224\n"
        "ft_heartbeat = 2\n"
        "ft_activation = 7\n"
        "client_heartbeat_server = 5\n"
        "server_timeout_client_connection = 20\n"
        'startup_abort_list = "CONFIG_FILES, db_files"\n'
        "npsend_check_mode = Always\n"
        "ssl_server_trusted = a.pem\n"
        "ssl_server_trusted = b.pem\n"
        "ft_ssl_identity = id.p12\n"
        "statistics = enabled\n"
        "logfile = /var/log/x.log\n",
    )
    cfg = load_tibemsd(path)
    assert cfg.server == "EMS-A" and cfg.password == "s3cret"
    assert cfg.listen == ["tcp://7222", "ssl://host:7243"]
    assert cfg.authorization is True
    assert cfg.max_msg_size == 8 * 1024**2 and cfg.max_msg_memory == 512 * 1024**2
    assert cfg.max_connections == 100
    assert cfg.ft_active_urls == [ListenURL("tcp", "peer", 7224)]
    assert (cfg.ft_heartbeat, cfg.ft_activation) == (2, 7)
    assert cfg.client_heartbeat_server == 5 and cfg.server_timeout_client_connection == 20
    assert cfg.startup_abort_list == {"CONFIG_FILES", "DB_FILES"}
    assert cfg.npsend_check_mode == "always"
    assert cfg.ssl_server_trusted == ["a.pem", "b.pem"] and cfg.ft_ssl_identity == "id.p12"
    assert cfg.extra == {"statistics": "enabled"}
    assert cfg.logfile == "/var/log/x.log"
    assert cfg.source["listen"] == (path, 4) and cfg.source["server"] == (path, 1)
    assert cfg.warnings == []
    assert len(cfg.items) == 20 and cfg.items[0].key == "server"


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_tibemsd(write(tmp_path, ""))
    with pytest.raises(AttributeError):
        cfg.server = "x"  # type: ignore[misc]


def test_relative_paths_use_cwd_absent_ones_sit_beside_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    confdir = tmp_path / "etc"
    confdir.mkdir()
    path = write(confdir, "queues = q/queues.conf\ntopics = /abs/topics.conf\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_tibemsd(path)
    assert cfg.queues == os.path.join(str(tmp_path), "q", "queues.conf")
    assert cfg.topics == "/abs/topics.conf"
    assert cfg.users == str(confdir / "users.conf")
    assert cfg.is_set("queues") and not cfg.is_set("users")


def test_unknown_parameter_warns(tmp_path: Path) -> None:
    path = write(tmp_path, "server = a\nfoo = 1\n")
    cfg = load_tibemsd(path)
    assert cfg.warnings == [f"{path}:2: unknown parameter 'foo'"]


def test_duplicate_parameter_warns_last_wins(tmp_path: Path) -> None:
    path = write(tmp_path, "server = a\nserver = b\n")
    cfg = load_tibemsd(path)
    assert cfg.server == "b" and cfg.source["server"] == (path, 2)
    assert cfg.warnings == [f"{path}:2: server already set at line 1; last value wins"]


def test_empty_value_means_unset(tmp_path: Path) -> None:
    cfg = load_tibemsd(write(tmp_path, "server =\nlogfile =\nqueues =\n"))
    assert cfg.server == "EMS-SERVER" and cfg.logfile is None
    assert not cfg.is_set("queues") and cfg.queues == str(tmp_path / "queues.conf")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ft_heartbeat = three", "ft_heartbeat: expected seconds, got 'three'"),
        ("authorization = maybe", "authorization: expected enabled or disabled, got 'maybe'"),
        ("max_msg_size = lots", "max_msg_size: expected a size such as 10MB, got 'lots'"),
        ("max_msg_size = 1GB", "max_msg_size: at most 512MB, got '1GB'"),
        ("max_msg_memory = 1MB", "max_msg_memory: expected 0 (no limit) or at least 8MB"),
        ("max_connections = -5", "max_connections: expected a number >= 0, got '-5'"),
        ("listen = http://x:1", "listen: URL 'http://x:1': scheme must be tcp or ssl"),
        ("ft_active = tcp://a,", "ft_active: URL list 'tcp://a,': empty URL"),
        ("startup_abort_list = CONFIG_FILES,BOGUS", "startup_abort_list: unknown item 'BOGUS'"),
        ("npsend_check_mode = sometimes", "npsend_check_mode: expected one of"),
        ("max_preauth_bytes = 512", "max_preauth_bytes: expected at least 1KB (a login must "
                                    "fit), got '512'"),
        ("max_preauth_bytes = some", "max_preauth_bytes: expected a size such as 10MB"),
        ("max_selector_length = -1", "max_selector_length: expected a number >= 0, got '-1'"),
        ("max_selector_length = 4KB", "max_selector_length: expected a whole number, got '4KB'"),
        ("max_client_pending_bytes = many",
         "max_client_pending_bytes: expected a size such as 10MB, got 'many'"),
    ],
)
def test_bad_values_name_file_line_key(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path, f"server = a\n\n{line}\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:3: {message}")) as exc:
        load_tibemsd(path)
    assert (exc.value.path, exc.value.line, exc.value.key) == (path, 3, line.split()[0])


def test_missing_tibemsd_conf(tmp_path: Path) -> None:
    path = str(tmp_path / "tibemsd.conf")
    with pytest.raises(ConfigError, match=re.escape(path)):
        load_tibemsd(path)


def test_ft_activation_must_exceed_twice_heartbeat(tmp_path: Path) -> None:
    path = write(tmp_path, "ft_active = tcp://peer:7222\nft_heartbeat = 5\nft_activation = 10\n")
    with pytest.raises(ConfigError) as exc:
        load_tibemsd(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}:3: ft_activation: ") and "ft_heartbeat" in msg
    assert exc.value.key == "ft_activation" and exc.value.line == 3
    # Only the heartbeat written: the error points at it.
    path = write(tmp_path, "ft_active = tcp://peer:7222\nft_heartbeat = 6\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:2: ft_activation:")):
        load_tibemsd(path)
    # Standalone: no FT rule applies.
    assert load_tibemsd(write(tmp_path, "ft_heartbeat = 6\n")).ft_activation == 10


def test_heartbeat_timeout_needs_heartbeat(tmp_path: Path) -> None:
    path = write(tmp_path, "server_timeout_client_connection = 20\n")
    with pytest.raises(ConfigError, match="requires client_heartbeat_server") as exc:
        load_tibemsd(path)
    assert exc.value.line == 1
    # server_heartbeat_client is 5 s when not set (EMS.md 2.5): no error alone.
    path = write(tmp_path, "client_timeout_server_connection = 20\n")
    assert load_tibemsd(path).client_timeout_server_connection == 20


def test_heartbeat_must_be_a_third_of_its_timeout(tmp_path: Path) -> None:
    path = write(tmp_path, "server_heartbeat_client = 5\nclient_timeout_server_connection = 2\n")
    with pytest.raises(ConfigError, match=re.escape(
            f"{path}:2: client_timeout_server_connection: 2 s must be at least 3 × "
            "server_heartbeat_client (5 s)")):
        load_tibemsd(path)
    # The 5 s default counts when server_heartbeat_client is not written.
    path = write(tmp_path, "client_timeout_server_connection = 10\n")
    with pytest.raises(ConfigError, match="at least 3 × server_heartbeat_client"):
        load_tibemsd(path)
    path = write(tmp_path, "client_heartbeat_server = 4\nserver_timeout_client_connection = 10\n")
    with pytest.raises(ConfigError, match="at least 3 × client_heartbeat_server"):
        load_tibemsd(path)
    ok = load_tibemsd(write(tmp_path, "client_heartbeat_server = 3\n"
                                      "server_timeout_client_connection = 9\n"))
    assert ok.server_timeout_client_connection == 9
    # handshake_timeout not written: 3 s or the largest heartbeat/timeout (EMS.md 2.5).
    assert ok.handshake_seconds == 9
    assert load_tibemsd(write(tmp_path, "handshake_timeout = 4\n"
                                        "client_heartbeat_server = 3\n"
                                        "server_timeout_client_connection = 9\n")
                        ).handshake_seconds == 4
    assert load_tibemsd(write(tmp_path, "")).handshake_seconds == 3


def test_ft_active_own_listen_warns(tmp_path: Path) -> None:
    path = write(tmp_path, "listen = tcp://h:7222\nft_active = tcp://h:7222\n")
    assert load_tibemsd(path).warnings == [
        f"{path}:2: ft_active tcp://h:7222 is this server's own listen URL"
    ]


def test_overrides_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "listen = tcp://7222\nlisten = ssl://7243\nstore = /data\n")
    cfg = load_tibemsd(
        path,
        {"listen": "tcp://127.0.0.1:0", "store": "/tmp/x", "-ft_heartbeat": "1", "queues": "q.c"},
    )
    assert cfg.listen == ["tcp://127.0.0.1:0"]
    assert cfg.store == "/tmp/x" and cfg.ft_heartbeat == 1
    assert cfg.queues == str(tmp_path / "q.c")
    assert cfg.source["store"] == (COMMAND_LINE, 0)
    assert load_tibemsd(path, {"listen": "tcp://1,ssl://2"}).listen == ["tcp://1", "ssl://2"]


def test_bad_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(ConfigError, match="command line: bogus: unknown parameter"):
        load_tibemsd(path, {"bogus": "1"})
    with pytest.raises(ConfigError, match="command line: ft_heartbeat: expected seconds") as exc:
        load_tibemsd(path, {"ft_heartbeat": "x"})
    assert exc.value.path == COMMAND_LINE and exc.value.key == "ft_heartbeat"
    with pytest.raises(ConfigError, match=re.escape("command line: ft_activation:")):
        load_tibemsd(path, {"ft_active": "tcp://p", "ft_activation": "6"})


# ---- sample configuration ------------------------------------------------------


def test_sample_config_loads_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # make run starts the daemon from the repository root
    cfg = load_tibemsd("conf/standalone/tibemsd.conf")
    assert cfg.warnings == []
    assert cfg.server == "EMS-SERVER" and cfg.listen == ["tcp://localhost:7222"]
    assert cfg.store == "datastore" and cfg.authorization is False and cfg.logfile is None
    assert cfg.max_msg_size == 8 * 1024**2
    for name in (
        "users",
        "groups",
        "acl_list",
        "queues",
        "topics",
        "factories",
        "stores",
        "routes",
    ):
        assert cfg.is_set(name)
        assert os.path.isfile(getattr(cfg, name)), name
    queues = load_destinations(cfg.queues, "queue", required=True)
    topics = load_destinations(cfg.topics, "topic", required=True)
    assert queues.warnings == [] and topics.warnings == []
    assert queues.static_names() == ["sample", "queue.sample", "$sys.undelivered"]
    assert topics.static_names() == ["topic.sample"]
    assert queues.resolve("anything.at.all") is not None
    assert topics.resolve("$TMP$.EMS-SERVER.1.1") is not None


_SECTION_RE = re.compile(r"\[[^\]]+\]|[A-Za-z_]+\s*=\s*\S.*")


@pytest.mark.parametrize("name", ["factories.conf", "stores.conf", "routes.conf"])
def test_sample_section_files_are_ems_syntax(name: str) -> None:
    for line in read_lines(SAMPLE / name):
        assert _SECTION_RE.fullmatch(line.text), line.where


def test_sample_security_files_are_ems_syntax() -> None:
    users = [ln.text for ln in read_lines(SAMPLE / "users.conf")]
    assert users == ['admin::"Administrator"']
    groups = [ln.text for ln in read_lines(SAMPLE / "groups.conf")]
    assert groups == ['$admin:"Administrators"']
    assert read_lines(SAMPLE / "acl.conf") == []
