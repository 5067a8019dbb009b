"""Batch increments: tally.increment_counters of BATCH increments over as
many keys per call, from a few pgbench clients."""

from __future__ import annotations

import psycopg

from bench.counters import counter_total
from bench.plan import BATCH, Plan
from bench.runners import PgBench


def measure(conn: psycopg.Connection, pg: PgBench, plan: Plan) -> dict:
    conn.execute("SELECT tally.create_counter('bench_batch')")
    conn.execute("CALL tally.compact()")
    keys = ",".join(f"k{i}" for i in range(1, BATCH + 1))
    script = (
        f"SELECT tally.increment_counters('{{{','.join(['bench_batch'] * BATCH)}}}'::text[],"
        f" '{{{keys}}}'::text[], '{{{','.join(['1'] * BATCH)}}}'::bigint[]);\n"
    )
    label = f"batch ({BATCH:,}/call, {plan.batch_clients} clients)"
    tps, done = pg.run("batch", script, plan.batch_clients, plan.seconds, label)
    pending = int(conn.execute("SELECT tally._pending()").fetchone()[0])
    conn.execute("CALL tally.compact()")
    total = counter_total(conn, "bench_batch")
    return {
        "case": "tally_batch",
        "label": label,
        "calls_per_s": round(tps, 1),
        "increments_per_s": round(tps * BATCH),
        "increments": done * BATCH,
        "stored": total,
        "exact": total == done * BATCH and pending >= 0,
        "per_call": BATCH,
        "clients": plan.batch_clients,
        "seconds": plan.seconds,
    }
