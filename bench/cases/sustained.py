"""Sustained ingest with the compactor running: two pgbench clients write
increments_counters batches of BATCH (a fast counter, timestamps now) over
10,000 keys, then over 1,000,000, while two plain compactors (compact_loop,
sharing the work) fold. Per cardinality: what the writers put in per
second, what the compactors folded per second while they wrote, the
backlog at the end and at its highest, and how long the rest took to fold
once the writers stopped."""

from __future__ import annotations

import time

import psycopg

from bench.counters import counter_total, fold_all
from bench.plan import BATCH, Plan
from bench.runners import Compactor, PgBench

CARDINALITIES = (10_000, 1_000_000)
DRAIN_CAP_S = 600  # the rest is folded by fold_all after this

# the pending deltas, counted (the statistics' live-tuple counts lag: a
# compactor's own folds reach them only when its CALL ends)
BACKLOG = "SELECT count(*) FROM tally.delta"
# what the compactors folded between two server times (every fold step records it)
FOLDED = (
    "SELECT coalesce(sum(r.deltas), 0)::bigint FROM tally.fold_runs AS r"
    " WHERE r.finished_at > %s AND r.finished_at <= %s AND r.outcome = 'ok'"
)
NOW = "SELECT clock_timestamp()"


def _one(dsn: str, conn: psycopg.Connection, pg: PgBench, plan: Plan, keys: int) -> dict:
    counter = f"bench_sustained_{keys}"
    conn.execute("SELECT tally.create_counter(%s)", (counter,))
    conn.execute("CALL tally.compact()")
    script = (
        f"SELECT tally.increment_counters(array_fill('{counter}'::text, ARRAY[{BATCH}]),"
        f" ARRAY(SELECT 'k' || (1 + floor(random() * {keys}))::int FROM generate_series(1, {BATCH})),"
        f" array_fill(1::bigint, ARRAY[{BATCH}]));\n"
    )
    peak = 0
    with Compactor(dsn, seconds=5, interval=0.2), Compactor(dsn, seconds=5, interval=0.2):
        started_at = conn.execute(NOW).fetchone()[0]
        t0 = time.monotonic()
        proc = pg.start(counter, script, plan.batch_clients, plan.sustained_seconds)
        counted = t0
        while proc.poll() is None:
            time.sleep(0.2)
            if time.monotonic() - counted >= 5:  # (a count of millions takes a few hundred ms)
                peak = max(peak, conn.execute(BACKLOG).fetchone()[0])
                counted = time.monotonic()
        written_s = time.monotonic() - t0
        ended_at = conn.execute(NOW).fetchone()[0]
        _, done = pg.result(proc)
        folded = conn.execute(FOLDED, (started_at, ended_at)).fetchone()[0]
        end_backlog = conn.execute(BACKLOG).fetchone()[0]
        t1 = time.monotonic()
        while conn.execute("SELECT tally._pending()").fetchone()[0] > 0 and time.monotonic() - t1 < DRAIN_CAP_S:
            time.sleep(1)
        drain_s = time.monotonic() - t1
    fold_all(conn, f"sustained {keys:,}: fold the rest")
    increments = done * BATCH
    total = counter_total(conn, counter)
    return {
        "keys": keys,
        "in_per_s": round(increments / written_s),
        "folded_per_s": round(folded / written_s),
        "fold_ratio": round(folded / increments, 2) if increments else None,
        "backlog_end": end_backlog,
        "backlog_peak": max(peak, end_backlog),
        "drain_s": round(drain_s, 1),
        "increments": increments,
        "exact": total == increments,
        "seconds": round(written_s, 1),
    }


def measure(dsn: str, conn: psycopg.Connection, pg: PgBench, plan: Plan) -> list[dict]:
    return [_one(dsn, conn, pg, plan, keys) for keys in CARDINALITIES]
