"""What the compactor study prints: a line as each case finishes."""

from __future__ import annotations

from bench.cases.compactor.lag import CLIENTS
from bench.report import say


def fold_rate_line(r: dict) -> None:
    say(
        f"  fold rate, {r['case']:<28} {r['deltas']:>9,} deltas in {r['seconds']:6.2f} s"
        f" = {r['deltas_per_s']:>10,.0f} deltas/s"
    )


def lag_line(r: dict) -> None:
    say(
        f"  lag under max single-row ingest: {r['ingest_per_s']:,.0f} increments/s ({CLIENTS} clients), lag p50 "
        f"{r['lag_p50_s']:.2f} s, p99 {r['lag_p99_s']:.2f} s, max {r['lag_max_s']:.2f} s"
    )


def backfill_line(r: dict) -> None:
    say(
        f"  backfill: {r['backfill_increments']:,} increments over a year inserted at"
        f" {r['backfill_insert_per_s']:,.0f}/s and all folded {r['backfill_folded_in_s']:.1f} s after start"
        f" ({r['backfill_end_to_end_per_s']:,.0f}/s end to end) while live increments kept arriving at"
        f" {r['live_rate_per_s']:,}/s; live lag meanwhile p50 {r['live_lag_p50_s']:.2f} s,"
        f" p99 {r['live_lag_p99_s']:.2f} s, max {r['live_lag_max_s']:.2f} s"
    )


def parallel_lines(i: int, run: dict, n: int, keys: int) -> None:
    """Run ``i`` of the parallel folds: the ceilings, the folds as shares of them, one and two compactors."""
    one, two = run["one"], run["two_slices"]
    for label, x in (("one transaction", run["ceiling"]), ("100,000 per transaction", run["ceiling_chunks"])):
        say(
            f"  ceiling, run {i}: bare DELETE + upserts, {label}: {x['deltas_per_s']:>7,}/s"
            f" ({x['seconds']:.1f} s; {x['deltas_per_cpu_s']:,} deltas per CPU s), machine"
            f" {x['machine_busy']:.0%} busy (load {x['load_1min']})"
        )
    say(
        f"  fold vs ceiling, run {i}: 1 compactor {one['of_ceiling']:.0%} of the ceiling"
        f" ({one.get('cpu_of_ceiling', 0):.0%} per CPU s), {one['of_ceiling_chunks']:.0%} of"
        f" its 100,000-delta transactions; 2 slice compactors {two['of_ceiling']:.0%}"
    )
    say(
        f"  parallel folds, run {i}: {n:,} deltas over {keys:,} keys (a year):"
        f" 1 compactor {one['deltas_per_s']:>7,}/s ({one['seconds']:.1f} s),"
        f" 2 slice compactors {two['deltas_per_s']:>7,}/s ({two['seconds']:.1f} s): {run['ratio']:.2f}x"
    )
    for slices, x in ((1, one), (2, two)):
        top = ", ".join(f"{k} {v:.0%}" for k, v in list(x["sessions"].items())[:4])
        say(
            f"    {slices} compactor(s): {x['compactor_cores']:.2f} cores used"
            f" ({x['deltas_per_cpu_s']:,} deltas per CPU s), machine {x['machine_busy']:.0%} busy"
            f" (load {x['load_1min']}); sessions: {top}"
        )
