"""Lag under sustained maximum single-row ingest (pgbench, each increment
its own transaction) with tally.compact_loop running."""

from __future__ import annotations

import statistics

import psycopg

from bench.cases.compactor import LIVE
from bench.counters import fresh_counter
from bench.runners import Compactor, PgBench, pct, sample_lag

CLIENTS = 16


def measure(dsn: str, seconds: int) -> dict:
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_counter(conn, "bench_live")
    with PgBench(dsn) as pg, Compactor(dsn, seconds=5, interval=0.5):
        bench = pg.start("live", LIVE.format(counter="bench_live"), CLIENTS, seconds, protocol="simple")
        lags = sample_lag(dsn, lambda: bench.poll() is not None)
        tps, _ = pg.result(bench)
    return {
        "ingest_per_s": round(tps),
        "lag_p50_s": round(statistics.median(lags), 3),
        "lag_p99_s": round(pct(lags, 0.99), 3),
        "lag_max_s": round(max(lags), 3),
        "seconds": seconds,
    }
