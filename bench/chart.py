"""The PNG beside a result JSON: msgs/s per workload per broker, and rpc latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import BROKER_LABELS, THROUGHPUT, headline_value

COLOURS = {"emsfast": "#d62728", "nats": "#1f77b4", "rabbitmq": "#ff7f0e",
           "activemq": "#2ca02c", "mosquitto": "#9467bd"}


def _short(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.1f}M"
    if x >= 1e3:
        return f"{x / 1e3:.0f}k" if x >= 1e4 else f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def draw(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    brokers = [k for k, b in result["brokers"].items() if "workloads" in b]
    workloads = [w for w in THROUGHPUT if w in result["parameters"]["workloads"]]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15, 6),
                                  gridspec_kw={"width_ratios": [3.2, 1]})
    width = 0.8 / max(1, len(brokers))
    for i, kind in enumerate(brokers):
        xs, ys = [], []
        for j, w in enumerate(workloads):
            v = headline_value(result, kind, w)
            if v is not None:
                xs.append(j + (i - (len(brokers) - 1) / 2) * width)
                ys.append(v)
        bars = ax.bar(xs, ys, width, label=BROKER_LABELS.get(kind, kind),
                      color=COLOURS.get(kind))
        for bar, y in zip(bars, ys, strict=True):
            ax.annotate(_short(y), (bar.get_x() + bar.get_width() / 2, y),
                        ha="center", va="bottom", fontsize=7, rotation=90,
                        xytext=(0, 2), textcoords="offset points")
    ax.set_yscale("log")
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels([w.replace("_", "\n") for w in workloads])
    ax.set_ylabel("messages/s (median, log scale; higher is better)")
    ax.set_title("Throughput, Python clients, 1 broker on 2 cores")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(axis="y", which="both", alpha=0.25)

    names, p50, p99 = [], [], []
    for kind in brokers:
        case = (result["brokers"][kind]["workloads"].get("rpc", {})
                .get("cases", {}).get("separate", {}))
        m = case.get("median")
        if m:
            names.append(kind)
            p50.append(m["p50_us"])
            p99.append(m["p99_us"])
    xs = range(len(names))
    ax2.bar([x - 0.2 for x in xs], p50, 0.4, label="p50",
            color=[COLOURS.get(n) for n in names])
    ax2.bar([x + 0.2 for x in xs], p99, 0.4, label="p99", alpha=0.45,
            color=[COLOURS.get(n) for n in names], hatch="//")
    for x, a, b in zip(xs, p50, p99, strict=True):
        ax2.annotate(f"{a:.0f}", (x - 0.2, a), ha="center", va="bottom", fontsize=7)
        ax2.annotate(f"{b:.0f}", (x + 0.2, b), ha="center", va="bottom", fontsize=7)
    ax2.set_xticks(list(xs))
    ax2.set_xticklabels(names, rotation=30)
    ax2.set_yscale("log")
    ax2.set_ylabel("µs per round trip (log scale; lower is better)")
    ax2.set_title("rpc latency: p50 (solid), p99 (hatched)")
    ax2.grid(axis="y", alpha=0.25)

    mach = result["machine"]
    fig.suptitle(f"emsfast vs peers — {result['date']}, {mach['cpu']}, {mach['cores']} cores"
                 f"{' (quick run)' if result['parameters'].get('quick') else ''}",
                 fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
