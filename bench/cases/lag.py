"""Compactor lag under sustained maximum ingest: pgbench single-row
increments over 1,000 keys with tally.compact_loop folding meanwhile, the
age of the oldest pending delta sampled all along."""

from __future__ import annotations

import statistics
import time

import psycopg
from tally.progress import Progress

from bench.counters import counter_total, fold_all
from bench.plan import Plan
from bench.runners import Compactor, PgBench, pct, sample_lag


def measure(dsn: str, conn: psycopg.Connection, pg: PgBench, plan: Plan) -> dict:
    conn.execute("SELECT tally.create_counter('bench_live')")
    conn.execute("CALL tally.compact()")
    script = "\\set k random(1, 1000)\nSELECT tally.increment_counter('bench_live', :k::text);\n"
    with Compactor(dsn, seconds=2, interval=0.5), Progress(plan.lag_seconds, "lag under max ingest") as bar:
        proc = pg.start("lag", script, plan.clients, plan.lag_seconds)
        lags = sample_lag(dsn, lambda: proc.poll() is not None, tick=lambda: bar.update(time.monotonic() - bar.started))
        tps, done = pg.result(proc)
    fold_all(conn, "lag: fold the rest")
    stored = counter_total(conn, "bench_live")
    lags = lags or [0.0]
    return {
        "ingest_per_s": round(tps),
        "increments": done,
        "stored": stored,
        "exact": stored == done,
        "lag_p50_s": round(statistics.median(lags), 3),
        "lag_p99_s": round(pct(lags, 0.99), 3),
        "lag_max_s": round(max(lags), 3),
        "seconds": plan.lag_seconds,
        "clients": plan.clients,
    }
