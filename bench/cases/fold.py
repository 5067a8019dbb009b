"""Deltas folded per second: ``plan.fold_deltas`` increments over 1,000 keys
loaded first, then folded by CALL tally.compact() until nothing is pending;
timestamps in the last minute (live) and over the last year (backfill)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg

from bench.counters import fold_all, load
from bench.plan import Plan

CASES = (
    ("live (last minute)", "1 minute", "bench_fold_live"),
    ("backfill (last year)", "365 days", "bench_fold_backfill"),
)


def measure(conn: psycopg.Connection, plan: Plan, case: str, spread: str, counter: str) -> dict:
    conn.execute("SELECT tally.create_counter(%s::text)", (counter,))
    conn.execute("CALL tally.compact()")
    n = plan.fold_deltas
    load(conn, counter, n, 1_000, spread, f"fold {case}: load")
    secs = fold_all(conn, f"fold {case}: fold")
    return {"case": case, "deltas": n, "keys": 1_000, "seconds": round(secs, 3), "deltas_per_s": round(n / secs)}


def run(conn: psycopg.Connection, plan: Plan) -> Iterator[dict]:
    for case, spread, counter in CASES:
        yield measure(conn, plan, case, spread, counter)
