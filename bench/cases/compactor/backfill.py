"""A backfill while live: a year of history through increment_counters
(10,000 per call) while pgbench keeps writing live increments at a steady
rate; the backfill's insert and fold throughput, and the live lag (the age
of the oldest pending live increment) meanwhile. Default retention: buckets
older than 7 days (minute) / 90 days (hour) are skipped, day/week/month and
the total get everything."""

from __future__ import annotations

import statistics
import threading
import time

import psycopg

from bench.cases.compactor import LIVE, YEAR
from bench.counters import fresh_counter, load_seeded
from bench.runners import Compactor, PgBench, pct, sample_lag


def measure(dsn: str, n: int, live_rate: int = 5_000) -> dict:
    """``n`` increments over a year while live increments keep arriving at
    ``live_rate``/s (pgbench -R, 8 clients)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        live_id = fresh_counter(conn, "bench_live")
        backfill_id = fresh_counter(conn, "bench_backfill")
    lags: list[float] = []
    done_event = threading.Event()
    with PgBench(dsn) as pg, Compactor(dsn, seconds=5, interval=0.5):
        bench = pg.start("live", LIVE.format(counter="bench_live"), 8, 3600, rate=live_rate, protocol="simple")
        probe = threading.Thread(target=lambda: lags.extend(sample_lag(dsn, done_event.is_set, counter_id=live_id)))
        probe.start()
        time.sleep(3)
        t0 = time.monotonic()
        insert_rate = load_seeded(dsn, "bench_backfill", n, YEAR)
        with psycopg.connect(dsn, autocommit=True) as conn:
            while conn.execute(
                "SELECT EXISTS (SELECT FROM tally.delta WHERE counter_id = %s)", (backfill_id,)
            ).fetchone()[0]:
                time.sleep(0.25)
        done = time.monotonic() - t0
        done_event.set()
        probe.join()
        pg.stop(bench)
    return {
        "backfill_increments": n,
        "backfill_insert_per_s": round(insert_rate),
        "backfill_folded_in_s": round(done, 2),
        "backfill_end_to_end_per_s": round(n / done),
        "live_rate_per_s": live_rate,
        "live_lag_p50_s": round(statistics.median(lags), 3),
        "live_lag_p99_s": round(pct(lags, 0.99), 3),
        "live_lag_max_s": round(max(lags), 3),
    }
