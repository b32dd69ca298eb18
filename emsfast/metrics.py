"""Prometheus text exposition (format 0.0.4) and a latency histogram.

No client library: the handful of families ``/metrics`` serves are written here
directly. ``Histogram`` is the hook a store fills: a store that sets
``commit_latency = Histogram(...)`` and calls ``observe(seconds)`` once per
commit gets ``emsfast_store_commit_seconds`` on ``/metrics``.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Mapping, Sequence

# fsync latencies on SSD/NVMe sit at 0.1-5 ms and on network block storage at
# 1-50 ms; the buckets resolve both and catch stalls up to seconds.
COMMIT_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
)


class Histogram:
    """Cumulative-bucket histogram; ``observe`` is O(log buckets) and allocation-free.

    A store's writer thread may call ``observe`` while the loop renders a scrape:
    the scrape derives ``+Inf`` and ``_count`` from one pass over the buckets, so
    what it shows is always self-consistent.
    """

    def __init__(self, buckets: Sequence[float] = COMMIT_BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self._counts = [0] * (len(self.buckets) + 1)   # last slot: above every bound
        self.count = 0
        self.sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        # Several writer threads (one per store) share one histogram.
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, value)] += 1
            self.count += 1
            self.sum += value

    def cumulative(self) -> list[tuple[str, int]]:
        """(``le`` label, cumulative count) pairs, ending with ``+Inf``."""
        out: list[tuple[str, int]] = []
        total = 0
        for bound, n in zip(self.buckets, self._counts, strict=False):
            total += n
            out.append((_number(bound), total))
        out.append(("+Inf", total + self._counts[-1]))
        return out


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


class Exposition:
    """Builds one scrape: each family's HELP and TYPE once, then its samples."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[Mapping[str, str], float]]) -> None:
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self._lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def histogram(self, name: str, help_text: str, hist: Histogram) -> None:
        self._lines.append(f"# HELP {name} {help_text}")
        self._lines.append(f"# TYPE {name} histogram")
        buckets = hist.cumulative()
        for le, n in buckets:
            self._lines.append(f'{name}_bucket{{le="{le}"}} {n}')
        self._lines.append(f"{name}_sum {_number(hist.sum)}")
        self._lines.append(f"{name}_count {buckets[-1][1]}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"
