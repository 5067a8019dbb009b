"""Batch increments: tally.increment_counters of BATCH increments over as
many keys per call, from a few pgbench clients; the same with an event id
per element (every id new: each is claimed), beside it."""

from __future__ import annotations

import psycopg

from bench.counters import counter_total
from bench.plan import BATCH, Plan
from bench.runners import PgBench


def measure(conn: psycopg.Connection, pg: PgBench, plan: Plan, event_ids: bool = False) -> dict:
    counter = "bench_batch_ids" if event_ids else "bench_batch"
    conn.execute("SELECT tally.create_counter(%s)", (counter,))
    conn.execute("CALL tally.compact()")
    keys = ",".join(f"k{i}" for i in range(1, BATCH + 1))
    # a fresh id per element (63 random bits per call and client): none is a replay
    ids = (
        f", ARRAY(SELECT :client_id::text || '-' || :id::text || '-' || g FROM generate_series(1, {BATCH}) AS g))"
        if event_ids
        else ")"
    )
    script = ("\\set id random(1, 9223372036854775806)\n" if event_ids else "") + (
        f"SELECT tally.increment_counters('{{{','.join([counter] * BATCH)}}}'::text[],"
        f" '{{{keys}}}'::text[], '{{{','.join(['1'] * BATCH)}}}'::bigint[], NULL{ids};\n"
    )
    label = f"batch{' with event ids' if event_ids else ''} ({BATCH:,}/call, {plan.batch_clients} clients)"
    tps, done = pg.run(counter, script, plan.batch_clients, plan.seconds, label)
    pending = int(conn.execute("SELECT tally._pending()").fetchone()[0])
    conn.execute("CALL tally.compact()")
    total = counter_total(conn, counter)
    return {
        "case": "tally_batch_event_ids" if event_ids else "tally_batch",
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
