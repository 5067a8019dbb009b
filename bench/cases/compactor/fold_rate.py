"""Deltas folded per second by one CALL tally.compact(): 1,000 keys, every
granularity; timestamps in the last minute (live), the last hour (late),
the last year (backfill)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import psycopg

from bench.cases.compactor import YEAR
from bench.counters import counter_total, fresh_counter, load_seeded

SPREADS = (
    ("live (last minute)", timedelta(minutes=1)),
    ("late (last hour)", timedelta(hours=1)),
    ("backfill (last year)", YEAR),
)


def measure(dsn: str, n: int, spread: timedelta, label: str) -> dict:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CALL tally.compact()")
        fresh_counter(conn, "bench_fold")
        load_seeded(dsn, "bench_fold", n, spread)
        t0 = time.monotonic()
        conn.execute("CALL tally.compact()")
        secs = time.monotonic() - t0
        assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0
        total = counter_total(conn, "bench_fold")
        assert total == n, (total, n)
    return {"case": label, "deltas": n, "seconds": round(secs, 3), "deltas_per_s": round(n / secs)}


def run(dsn: str, n: int) -> Iterator[dict]:
    for label, spread in SPREADS:
        yield measure(dsn, n, spread, label)
