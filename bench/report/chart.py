"""The chart of `make bench` (latest.png): the single increments as bars,
and the read latency against the size of the history."""

from __future__ import annotations

from pathlib import Path

from bench.plan import BATCH
from bench.report import say


def draw(res: dict, path: Path) -> bool:
    """Draw the chart of a full run into ``path``; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("  (matplotlib not installed: no chart)")
        return False
    single = [r for r in res["single"] if "tps" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.25, 1]})
    labels = [r["label"] for r in single]
    values = [r["tps"] for r in single]
    colors = [
        "#1f77b4" if r["case"].startswith("tally") else "#c44e52" if "redis" in r["case"] else "#8c8c8c" for r in single
    ]
    ax1.barh(labels, values, color=colors)
    ax1.invert_yaxis()
    for i, v in enumerate(values):
        ax1.text(v, i, f" {v:,}", va="center", fontsize=8)
    ax1.set_xlabel("increments per second (one per transaction)")
    env = res["environment"]
    ax1.set_title(
        f"Hot key, {env['plan']['clients']} clients, {env['cores']} cores, PostgreSQL {env['postgres'].split()[0]}\n"
        f"batch (increment_counters, {BATCH:,}/call): {res['batch']['increments_per_s']:,}/s",
        fontsize=9,
    )
    ax1.set_xlim(0, max(values) * 1.25 if values else 1)
    hist = res["history"]
    sizes = [h["events"] for h in hist]
    ax2.plot(sizes, [h["counter_value_ms"]["p50"] for h in hist], "o-", color="#1f77b4", label="counter_value p50")
    ax2.plot(
        sizes,
        [h["counter_value_ms"]["p99"] for h in hist],
        "o--",
        color="#1f77b4",
        alpha=0.5,
        label="counter_value p99",
    )
    ax2.plot(sizes, [h["count_star_ms"]["p50"] for h in hist], "s-", color="#8c8c8c", label="SELECT count(*) p50")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("events in the history of the key")
    ax2.set_ylabel("read latency, ms (log)")
    ax2.set_title("Read latency vs history size", fontsize=9)
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".png.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
    return True
