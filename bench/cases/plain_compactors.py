"""Plain compactors sharing the work: the same backfill (over 60,000 keys,
timestamps over a year) folded by one CALL tally.compact(), then by two at
once, each a plain call (no slice given), side by side in one run."""

from __future__ import annotations

import psycopg

from bench.cases.compactor import YEAR, parallel
from bench.counters import fresh_counter, load_seeded
from bench.plan import Plan


def measure(dsn: str, conn: psycopg.Connection, plan: Plan) -> dict:
    n = plan.fold_deltas // 2
    keys = parallel.KEYS
    # the rollup partitions a year of buckets needs exist before either fold
    fresh_counter(conn, "bench_plain_warmup")
    load_seeded(dsn, "bench_plain_warmup", 20_000, YEAR, keys, seed=98)
    conn.execute("CALL tally.compact()")
    one, two = (parallel._fold(dsn, conn, n, keys, 7, k, plain=True) for k in (1, 2))
    return {
        "deltas": n,
        "keys": keys,
        "one": one,
        "two": two,
        "ratio": round(one["seconds"] / two["seconds"], 2),
    }
