"""What `make bench-citus` prints: a line as each case finishes, then the
table that citus.txt keeps."""

from __future__ import annotations

from bench.cases.citus.nodes import Target
from bench.report import say

SHORT = {"node": "n", "coordinator": "c", "worker1": "w1", "worker2": "w2"}


def _nodes(values: dict[str, float]) -> str:
    return " ".join(f"{SHORT.get(n, n)}={v:g}" for n, v in values.items())


def _exact(r: dict) -> str:
    return "exact" if r["exact"] else "NOT EXACT"


def ingest_line(t: Target, r: dict) -> None:
    say(
        f"  {t.label:<26} {r['label']:<40} {r['increments_per_s']:>9,}/s"
        f"  CPU µs/increment: {_nodes(r['cpu_us_per_increment'])}"
        f"  machine {r['machine_busy']:.0%}  {_exact(r)}"
    )


def fold_line(t: Target, r: dict) -> None:
    say(
        f"  {t.label:<26} fold {r['label']:<20} {r['deltas']:>8,} deltas in {r['seconds']:6.2f} s"
        f" = {r['deltas_per_s']:>8,}/s  CPU s: {_nodes(r['cpu_s'])}"
        f"  ({r['deltas_per_worker_cpu_s'] or 0:,} per worker CPU s; loaded at {r['load_per_s']:,.0f}/s)"
        f"  {_exact(r)}"
    )


def step_line(t: Target, r: dict) -> None:
    say(f"  {t.label:<26} CALL tally.compact() with one delta pending: {r['ms_p50']:.1f} ms (median of {r['calls']})")


def table(res: dict) -> list[str]:
    labels = {t["key"]: t["label"] for t in res["targets"]}
    keys = list(labels)
    lines = [
        f"tally on Citus {res['environment']['citus']} beside single-node tally, {res['environment']['when']}",
        f"{res['environment']['cores']} cores shared by every node, the clients and other work on the machine"
        f" (load average at start {', '.join(f'{x:.1f}' for x in res['environment']['load_average_at_start'])}):",
        "figures are one run on a shared, loaded machine, not a scaling measurement.",
        "",
        f"{'increments/s (pgbench, each its own transaction)':<50}" + "".join(f"{labels[k]:>22}" for k in keys),
    ]
    for rows in res["ingest"].values():
        lines.append(
            f"{rows[keys[0]]['label'] + ' (' + str(rows[keys[0]]['clients']) + ' clients)':<50}"
            + "".join(f"{rows[k]['increments_per_s']:>22,}" for k in keys)
        )
    lines += ["", "CPU µs per increment, per node"]
    for rows in res["ingest"].values():
        cells = [_nodes(rows[k]["cpu_us_per_increment"]) for k in keys]
        lines.append(f"  {rows[keys[0]]['label']:<48}" + "".join(f"{c:>22}" for c in cells))
    lines += ["", f"{'fold, deltas/s (CALL tally.compact())':<50}" + "".join(f"{labels[k]:>22}" for k in keys)]
    for rows in res["fold"].values():
        first = rows[keys[0]]
        title = f"{first['label']} ({first['deltas']:,} over {first['keys']:,} keys)"
        lines.append(f"{title:<50}" + "".join(f"{rows[k]['deltas_per_s']:>22,}" for k in keys))
        lines.append(
            f"{'  per worker CPU second':<50}"
            + "".join(f"{rows[k]['deltas_per_worker_cpu_s'] or 0:>22,}" for k in keys)
        )
        lines.append(f"{'  CPU s per node':<50}" + "".join(f"{_nodes(rows[k]['cpu_s']):>22}" for k in keys))
    lines.append(
        f"{'CALL compact(), one delta pending, ms (median)':<50}"
        + "".join(f"{res['step_cost'][k]['ms_p50']:>22}" for k in keys)
    )
    lines += ["", "ratios"] + [f"  {k:<44} {v}" for k, v in res["ratios"].items()]
    lines.append(f"\nevery case exact (stored = committed): {'yes' if res['exact'] else 'NO'}")
    return lines
