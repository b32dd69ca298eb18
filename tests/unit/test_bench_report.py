"""bench/report.py turns a result JSON into the README tables; no broker is run here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import report  # noqa: E402


def _case(headline: str, **median: float) -> dict[str, Any]:
    base = {"broker_cpu_util": 0.5, "broker_cpu_us_per_msg": 2.0,
            "producer_send_msgs_per_s": 1.0}
    return {"placement": "two processes", "headline": headline, "count": 1000,
            "runs": [], "median": {**base, **median}}


def _result() -> dict[str, Any]:
    def wls(queue: float, persistent: float, p50: float) -> dict[str, Any]:
        rpc = _case("p50_us", p50_us=p50, p99_us=2 * p50, p99_9_us=3 * p50,
                    round_trips_per_s=1000.0)
        return {
            "queue": {"cases": {"separate": _case("msgs_per_s", msgs_per_s=queue)}},
            "persistent": {"cases": {"separate": _case("msgs_per_s", msgs_per_s=persistent,
                                                       confirmed_msgs_per_s=persistent)}},
            "rpc": {"cases": {"separate": rpc}},
        }

    return {
        "date": "2026-11-26T00:00:00+00:00",
        "machine": {"cpu": "CPU", "cores": 2, "memory_bytes": 2**34,
                    "disk": {"fstype": "ext4", "device": "/dev/x"}, "kernel": "6"},
        "software": {"emsfast": {"commit": "0123456789abcdef", "dirty": False},
                     "build": {"type": "release"}, "python": {"version": "3.11"},
                     "loop": {"name": "uvloop", "uvloop": "0.2"}},
        "parameters": {"runs": 3, "count": 200_000, "rpc_count": 20_000,
                       "large_count": 20_000, "backlog_count": 100_000, "size": 128,
                       "target_seconds": 4.0, "workloads": ["queue", "persistent", "rpc"]},
        "load_average": {"at_start": [0.3, 0.5, 0.7], "at_end": [1.5, 1, 1], "waited_s": 12,
                         "limit_1min": 0.6},
        "brokers": {
            "emsfast": {"workloads": wls(300_000, 60_000, 150.0)},
            "nats": {"version": "2.15.1", "workloads": wls(100_000, 3_000, 170.0)},
            "rabbitmq": {"version": "3.10", "workloads": {
                **wls(20_000, 10_000, 500.0),
                "persistent": {"cases": {"separate": {"placement": "p", "headline": "msgs_per_s",
                                                      "error": "Traceback\n  boom\nValueError: x"}}}}},
            "activemq": {"skipped": "java not found"},
        },
    }


def test_ratios_against_the_issue_targets() -> None:
    r = {row["target"]: row for row in report.ratios(_result())}
    queue = r["`queue` ≥ 2× NATS (nats-py)"]
    assert queue["ratio"] == 3.0 and queue["met"]
    js = r["`persistent` ≥ 5× NATS JetStream"]
    assert js["ratio"] == 20.0 and js["met"]
    assert "ratio" not in r["`persistent` ≥ 10× RabbitMQ"]  # RabbitMQ's run failed
    rpc = r["`rpc` p50 ≤ NATS"]
    assert rpc["met"] and round(rpc["ratio"], 3) == round(170 / 150, 3)


def test_render_has_one_column_per_broker_that_ran_and_says_why_others_did_not() -> None:
    text = report.render(_result())
    assert text.startswith(report.BEGIN) and text.endswith(report.END)
    header = next(line for line in text.splitlines() if line.startswith("| workload |"))
    assert "emsfast" in header and "NATS 2.15.1" in header and "RabbitMQ 3.10" in header
    assert "ActiveMQ" not in header
    assert "| ActiveMQ | — |  | skipped: java not found |" in text
    assert "failed: ValueError: x" in text          # the last line of the traceback
    assert "| queue msgs/s | 300,000 (CPU 50%) | 100,000 (CPU 50%) |" in text
    assert "3.0× (met)" in text and "not measured" in text
    assert "load average at the start 0.30" in text


def test_headline_line_and_readme_update(tmp_path: Path) -> None:
    line = report.headline_line(_result())
    assert line == "queue 3.0× NATS; persistent 20.0× NATS JetStream; rpc p50 150 µs vs NATS 170 µs"
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n\n{report.BEGIN}\nold\n{report.END}\n\noutro\n")
    report.update_readme(_result(), readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\noutro\n") and "old" not in text
