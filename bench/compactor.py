"""The compactor study (`make bench-compactor`).

1. fold rate: deltas folded per second, 1,000 keys, every granularity;
   timestamps in the last minute (live), the last hour (late), the last
   year (backfill).
2. lag under sustained maximum single-row ingest (pgbench, 16 clients,
   each increment its own transaction) with tally.compact_loop running.
3. backfill while live: a year of history through increment_counters
   (10,000 per call) while pgbench keeps writing live increments; the
   backfill's insert and fold throughput and the live lag meanwhile. Default
   retention: buckets older than 7 days (minute) / 90 days (hour) are
   skipped, day/week/month and the total get everything.

Usage: python bench/compactor.py --dsn "..." [--seconds 30] [--fold-deltas 2000000]
[--backfill 2000000] [--out DIR]. Writes compactor.json (default: bench/results/).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from lib import RESULTS, Compactor, PgBench, pct, sample_lag

# increment_counter on one of 1,000 keys: one pgbench transaction
LIVE = "\\set k random(1, 1000)\nSELECT tally.increment_counter('{counter}', :k::text);\n"


def fresh_counter(conn: psycopg.Connection, name: str, durable: bool = False) -> None:
    if conn.execute("SELECT 1 FROM tally.counters WHERE name = %s", (name,)).fetchone():
        conn.execute("SELECT tally.drop_counter(%s)", (name,))
    conn.execute("SELECT tally.create_counter(%s, p_durable => %s)", (name, durable))


def load_deltas(dsn: str, counter: str, n: int, spread: timedelta, per_call: int = 10_000) -> float:
    """Insert n increments over 1,000 keys through increment_counters; returns increments/s."""
    rnd = random.Random(1)
    now = datetime.now(UTC)
    t0 = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        done = 0
        while done < n:
            k = min(per_call, n - done)
            keys = [str(rnd.randint(1, 1000)) for _ in range(k)]
            ats = [now - spread * rnd.random() for _ in range(k)]
            conn.execute(
                "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
                ([counter] * k, keys, [1] * k, ats),
            )
            done += k
    return n / (time.monotonic() - t0)


def fold_rate(dsn: str, n: int, spread: timedelta, label: str) -> dict:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CALL tally.compact()")
        fresh_counter(conn, "bench_fold")
        load_deltas(dsn, "bench_fold", n, spread)
        t0 = time.monotonic()
        conn.execute("CALL tally.compact()")
        secs = time.monotonic() - t0
        assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0
        total = conn.execute(
            "SELECT sum(value) FROM tally.totals t JOIN tally.counters c ON c.id = t.counter_id"
            " WHERE c.name = 'bench_fold'"
        ).fetchone()[0]
        assert total == n, (total, n)
    r = {"case": label, "deltas": n, "seconds": round(secs, 3), "deltas_per_s": round(n / secs)}
    print(f"  fold rate, {label:<28} {n:>9,} deltas in {secs:6.2f} s = {n / secs:>10,.0f} deltas/s")
    return r


def lag_under_ingest(dsn: str, seconds: int) -> dict:
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_counter(conn, "bench_live")
    with PgBench(dsn) as pg, Compactor(dsn, seconds=5, interval=0.5):
        bench = pg.start("live", LIVE.format(counter="bench_live"), 16, seconds, protocol="simple")
        lags = sample_lag(dsn, lambda: bench.poll() is not None)
        tps, _ = pg.result(bench)
    r = {
        "ingest_per_s": round(tps),
        "lag_p50_s": round(statistics.median(lags), 3),
        "lag_p99_s": round(pct(lags, 0.99), 3),
        "lag_max_s": round(max(lags), 3),
        "seconds": seconds,
    }
    print(
        f"  lag under max single-row ingest: {tps:,.0f} increments/s (16 clients), lag p50 "
        f"{r['lag_p50_s']:.2f} s, p99 {r['lag_p99_s']:.2f} s, max {r['lag_max_s']:.2f} s"
    )
    return r


def backfill_while_live(dsn: str, n: int, live_rate: int = 5_000) -> dict:
    """A year of history through the batch API while live increments keep
    arriving at `live_rate`/s (pgbench -R, 8 clients)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_counter(conn, "bench_live")
        fresh_counter(conn, "bench_backfill")
        live_id = conn.execute("SELECT id FROM tally.counters WHERE name = 'bench_live'").fetchone()[0]
        backfill_id = conn.execute("SELECT id FROM tally.counters WHERE name = 'bench_backfill'").fetchone()[0]
    lags: list[float] = []
    done_event = threading.Event()

    def sampler() -> None:
        # Live lag: age of the oldest pending live increment, all along.
        with psycopg.connect(dsn, autocommit=True) as probe:
            while not done_event.is_set():
                lags.append(
                    float(
                        probe.execute(
                            "SELECT coalesce(extract(epoch FROM now() - min(written_at)), 0) FROM tally.delta"
                            " WHERE counter_id = %s",
                            (live_id,),
                        ).fetchone()[0]
                    )
                )
                time.sleep(0.25)

    with PgBench(dsn) as pg, Compactor(dsn, seconds=5, interval=0.5):
        bench = pg.start("live", LIVE.format(counter="bench_live"), 8, 3600, rate=live_rate, protocol="simple")
        probe = threading.Thread(target=sampler)
        probe.start()
        time.sleep(3)
        t0 = time.monotonic()
        insert_rate = load_deltas(dsn, "bench_backfill", n, timedelta(days=365))
        with psycopg.connect(dsn, autocommit=True) as conn:
            while conn.execute(
                "SELECT EXISTS (SELECT FROM tally.delta WHERE counter_id = %s)", (backfill_id,)
            ).fetchone()[0]:
                time.sleep(0.25)
        done = time.monotonic() - t0
        done_event.set()
        probe.join()
        pg.stop(bench)
    r = {
        "backfill_increments": n,
        "backfill_insert_per_s": round(insert_rate),
        "backfill_folded_in_s": round(done, 2),
        "backfill_end_to_end_per_s": round(n / done),
        "live_rate_per_s": live_rate,
        "live_lag_p50_s": round(statistics.median(lags), 3),
        "live_lag_p99_s": round(pct(lags, 0.99), 3),
        "live_lag_max_s": round(max(lags), 3),
    }
    print(
        f"  backfill: {n:,} increments over a year inserted at {insert_rate:,.0f}/s and all folded"
        f" {done:.1f} s after start ({n / done:,.0f}/s end to end) while live increments kept arriving at"
        f" {live_rate:,}/s; live lag meanwhile p50 {r['live_lag_p50_s']:.2f} s, p99 {r['live_lag_p99_s']:.2f} s,"
        f" max {r['live_lag_max_s']:.2f} s"
    )
    return r


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench/compactor.py", description="the compactor study (make bench-compactor)")
    ap.add_argument("--dsn", default=os.environ.get("TALLY_DSN"), help="a migrated database (default: $TALLY_DSN)")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--fold-deltas", type=int, default=2_000_000)
    ap.add_argument("--backfill", type=int, default=2_000_000)
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"directory for compactor.json (default: {RESULTS})")
    args = ap.parse_args()
    if not args.dsn:
        ap.error("pass --dsn or set TALLY_DSN")
    print("tally compactor benchmark")
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "fold_rate": [
            fold_rate(args.dsn, args.fold_deltas, timedelta(minutes=1), "live (last minute)"),
            fold_rate(args.dsn, args.fold_deltas, timedelta(hours=1), "late (last hour)"),
            fold_rate(args.dsn, args.fold_deltas, timedelta(days=365), "backfill (last year)"),
        ],
        "lag": lag_under_ingest(args.dsn, args.seconds),
        "backfill": backfill_while_live(args.dsn, args.backfill),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compactor.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {args.out / 'compactor.json'}")


if __name__ == "__main__":
    main()
