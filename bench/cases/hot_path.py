"""The hot-path comparison, interleaved: rounds of the naive UPDATE,
increment_counter on a fast counter, the ceiling and the raw INSERT, a few
seconds each, a compactor running. On a shared machine the load moves within
a minute; the median of the per-round ratios is what it moves least. Runs
after the single pass, whose setup made the cases' tables and counters."""

from __future__ import annotations

import statistics
from collections.abc import Iterator

import psycopg

from bench.cases.single import BY_KEY, stored
from bench.plan import Plan
from bench.runners import Compactor, PgBench

CASES = ("naive_update", "tally_fast", "tally_ceiling", "raw_unlogged_insert")


def measure_round(dsn: str, conn: psycopg.Connection, pg: PgBench, plan: Plan, i: int) -> tuple[dict[str, int], bool]:
    """Round ``i``: each case for ``plan.hot_seconds``; (tps per case, every case stored what it committed)."""
    conn.execute("CHECKPOINT")
    tps: dict[str, int] = {}
    exact = True
    with Compactor(dsn, seconds=len(CASES) * (plan.hot_seconds + 1) + 1, interval=0.5):
        for key in CASES:
            case = BY_KEY[key]
            before = stored(conn, case)
            t, done = pg.run(f"hot_{key}", case.script, plan.clients, plan.hot_seconds, f"round {i + 1}: {key}")
            exact = exact and stored(conn, case) == before + done
            tps[key] = round(t)
    return tps, exact


def run(dsn: str, conn: psycopg.Connection, pg: PgBench, plan: Plan) -> Iterator[tuple[dict[str, int], bool]]:
    """Every round in turn; folds what they left after the last."""
    for i in range(plan.hot_rounds):
        yield measure_round(dsn, conn, pg, plan, i)
    conn.execute("CALL tally.compact()")


def summary(plan: Plan, rounds: list[dict[str, int]], exact: bool) -> dict:
    """The rounds and the medians of their ratios."""

    def med(a: str, b: str) -> float:
        return round(statistics.median(r[a] / r[b] for r in rounds if r[b]), 2)

    ratios = {
        "fast_vs_naive": med("tally_fast", "naive_update"),
        "fast_vs_raw_insert": med("tally_fast", "raw_unlogged_insert"),
        "fast_vs_ceiling": med("tally_fast", "tally_ceiling"),
        "ceiling_vs_naive": med("tally_ceiling", "naive_update"),
        "ceiling_vs_raw_insert": med("tally_ceiling", "raw_unlogged_insert"),
    }
    return {"rounds": rounds, "ratios": ratios, "exact": exact, "clients": plan.clients, "seconds": plan.hot_seconds}
