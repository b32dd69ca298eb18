"""Issue 10 parameters (health_check_listen, stomp_listen, logfile_max_size) and the
Prometheus text writer."""

from __future__ import annotations

from pathlib import Path

import pytest

from emsfast.config.tibemsd import load_tibemsd, parse_service_url
from emsfast.config.urls import ListenURL
from emsfast.errors import ConfigError
from emsfast.metrics import Exposition, Histogram, escape_label


@pytest.mark.parametrize(
    ("text", "scheme", "url"),
    [
        ("http://:7220", "http", ListenURL("tcp", "", 7220)),
        ("http://127.0.0.1:0", "http", ListenURL("tcp", "127.0.0.1", 0)),
        ("http://7220", "http", ListenURL("tcp", "", 7220)),
        ("tcp://:61613", "tcp", ListenURL("tcp", "", 61613)),
        ("localhost:61613", "tcp", ListenURL("tcp", "localhost", 61613)),
    ],
)
def test_service_urls(text: str, scheme: str, url: ListenURL) -> None:
    assert parse_service_url(text, scheme) == url


def test_new_parameters_parse(tmp_path: Path) -> None:
    conf = tmp_path / "tibemsd.conf"
    conf.write_text("health_check_listen = http://:7220\nstomp_listen = tcp://:61613\n"
                    "logfile_max_size = 10MB\n")
    config = load_tibemsd(conf)
    assert config.health_check_listen == "http://:7220"
    assert config.stomp_listen == "tcp://:61613"
    assert config.logfile_max_size == 10 * 1024 * 1024
    assert not config.warnings


@pytest.mark.parametrize(
    ("line", "key"),
    [("health_check_listen = ftp://:7220", "health_check_listen"),
     ("stomp_listen = http://:61613", "stomp_listen"),
     ("logfile_max_size = lots", "logfile_max_size")],
)
def test_bad_values_name_file_line_key(tmp_path: Path, line: str, key: str) -> None:
    conf = tmp_path / "tibemsd.conf"
    conf.write_text(f"# first\n{line}\n")
    with pytest.raises(ConfigError) as err:
        load_tibemsd(conf)
    assert "tibemsd.conf:2" in str(err.value) and key in str(err.value)


def test_histogram_buckets_are_cumulative() -> None:
    h = Histogram((0.001, 0.01, 0.1))
    for v in (0.0005, 0.001, 0.005, 0.05, 3.0):
        h.observe(v)
    assert h.cumulative() == [("0.001", 2), ("0.01", 3), ("0.1", 4), ("+Inf", 5)]
    assert h.count == 5 and h.sum == pytest.approx(3.0565)


def test_exposition_text() -> None:
    exp = Exposition()
    exp.family("x_total", "counter", "Things.", [({"d": 'a"b\\c\nd'}, 3), ({}, 1.5)])
    h = Histogram((1.0,))
    h.observe(0.5)
    exp.histogram("lat_seconds", "Latency.", h)
    assert exp.text() == (
        "# HELP x_total Things.\n# TYPE x_total counter\n"
        'x_total{d="a\\"b\\\\c\\nd"} 3\nx_total 1.5\n'
        "# HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n"
        'lat_seconds_bucket{le="1"} 1\nlat_seconds_bucket{le="+Inf"} 1\n'
        "lat_seconds_sum 0.5\nlat_seconds_count 1\n"
    )
    assert escape_label("plain") == "plain"


def test_rotating_log_handler_numbers_upwards(tmp_path: Path) -> None:
    import logging

    from emsfast.log import EmsFormatter, RotatingLogHandler

    path = tmp_path / "emsfastd.log"
    handler = RotatingLogHandler(str(path), 200)
    handler.setFormatter(EmsFormatter())
    logger = logging.getLogger("emsfast.test.rotation")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(30):
            logger.warning("line %d %s", i, "x" * 40)
    finally:
        logger.removeHandler(handler)
        handler.close()
    saved = sorted(tmp_path.glob("emsfastd.log.*"), key=lambda p: int(p.suffix[1:]))
    assert len(saved) >= 3
    # .1 is the oldest; each new file starts by naming the one just saved.
    assert "line 0 " in saved[0].read_text()
    assert path.read_text().splitlines()[0].endswith(f"Log file saved as '{saved[-1]}'.")
    assert all(p.stat().st_size < 200 + 120 for p in saved)


def test_metrics_show_store_histogram_and_standby() -> None:
    from types import SimpleNamespace
    from typing import Any

    from emsfast.server.health import is_ready, render_metrics

    hist = Histogram((0.001,))
    hist.observe(0.0004)
    server: Any = SimpleNamespace(
        broker=SimpleNamespace(queues={}, topics={}), connections={}, stomp_connections=set(),
        store=SimpleNamespace(commit_latency=hist), recovered=True, ft_state="standby",
        failovers=2)
    text = render_metrics(server)
    assert 'emsfast_store_commit_seconds_bucket{le="0.001"} 1' in text
    assert "emsfast_store_commit_seconds_count 1" in text
    assert 'emsfast_ft_state{state="standby"} 1' in text
    assert "emsfast_ft_failovers_total 2" in text
    assert "emsfast_ready 0" in text and not is_ready(server)
    server.store = SimpleNamespace()     # a store without the hook: no histogram family
    assert "emsfast_store_commit_seconds" not in render_metrics(server)
