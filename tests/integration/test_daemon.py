"""emsfastd as an operator sees it: log lines, options, signals (issue 3 item 3)."""

from __future__ import annotations

import re
import socket

import pytest

import emsfast
from emsfast._testbase.server_process import run_cli

pytestmark = pytest.mark.timeout(60)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")


def test_ems_log_lines(server_factory):
    srv = server_factory(name="LOGLINES-1")
    log = srv.log_text()
    assert "Server name: 'LOGLINES-1'." in log
    assert re.search(rf"Accepting connections on tcp://[^/\s]*/127\.0\.0\.1:{srv.port}\.", log)
    assert "Server is active." in log
    for line in log.splitlines():
        if "Server is active." in line or "Accepting connections on" in line:
            assert TIMESTAMP.match(line), f"no EMS timestamp on {line!r}"
    # The configured logfile gets the same lines.
    assert "Server is active." in srv.wait_logfile("Server is active.")
    # Readiness comes last: nothing says "active" before the listener is open.
    assert log.index("Accepting connections on") < log.index("Server is active.")


def test_sigterm_exits_zero(server_factory):
    srv = server_factory()
    assert srv.stop() == 0


def test_listen_option_overrides_file(server_factory):
    # The file names a port that is taken; only the -listen option lets it start.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        srv = server_factory(
            start=False,
            params={"listen": f"tcp://127.0.0.1:{busy}"},
            args=["-listen", "tcp://127.0.0.1:0"],
        )
        srv.start()
        assert srv.port != busy


def test_server_option_overrides_file(server_factory):
    srv = server_factory(start=False, name="FROM-FILE", args=["-server", "FROM-OPTION"])
    srv.start()
    assert "Server name: 'FROM-OPTION'." in srv.log_text()


def test_version():
    rc, out, err = run_cli("daemon", ["-version"], timeout=20)
    assert rc == 0, err
    assert emsfast.__version__ in out + err


def test_missing_config_file_exits_1(tmp_path):
    missing = tmp_path / "nope" / "tibemsd.conf"
    rc, out, err = run_cli("daemon", ["-config", str(missing)], timeout=20)
    assert rc == 1, (rc, out, err)
    assert "tibemsd.conf" in err


def test_help_lists_the_tibemsd_options():
    rc, out, err = run_cli("daemon", ["-help"], timeout=20)
    assert rc == 0, err
    for option in ("-config", "-listen", "-store", "-ft_active", "-trace", "-version"):
        assert option in out


def test_bad_trace_item_is_a_config_error(server_factory):
    srv = server_factory(start=False)
    rc, out, err = run_cli("daemon", ["-config", str(srv.write_config()), "-trace", "NOPE"],
                           timeout=20)
    assert rc == 1, (rc, out, err)
    assert "NOPE" in err
