"""Fold rates: CALL tally.compact() on a prepared backlog, live (timestamps
in the last minute, 10,000 keys) and a backfill (a year, 20,000 keys), the
rollup partitions made beforehand; deltas folded per worker CPU second."""

from __future__ import annotations

import psycopg

from bench.cases.citus import folded_total
from bench.cases.citus.nodes import Measure, Target
from bench.counters import drop_counter, fresh_counter, load

CASES = (("live", "live (last minute)", "1 minute", 10_000), ("backfill", "backfill (a year)", "365 days", 20_000))


def warm_up(t: Target) -> None:
    """The rollup partitions a year of buckets needs, made before any measured fold."""
    with psycopg.connect(t.dsn, autocommit=True) as conn:
        fresh_counter(conn, "cb_warmup")
        load(conn, "cb_warmup", 5_000, 1_000, "366 days")
        conn.execute("CALL tally.compact()")
        drop_counter(conn, "cb_warmup")


def measure(t: Target, case: tuple[str, str, str, int], n: int) -> dict:
    key, label, spread, keys = case
    counter = f"cb_fold_{key}"
    with psycopg.connect(t.dsn, autocommit=True) as conn:
        fresh_counter(conn, counter)
        conn.execute("CALL tally.compact()")
        insert_rate = n / load(conn, counter, n, keys, spread)
        conn.execute("CHECKPOINT")
        flips0 = conn.execute("SELECT flips FROM tally.write_gen").fetchone()[0]
        with Measure(t) as m:
            conn.execute("CALL tally.compact()")
        flips1 = conn.execute("SELECT flips FROM tally.write_gen").fetchone()[0]
        got = folded_total(conn, counter)
        drop_counter(conn, counter)
    workers_cpu = sum(v for k, v in m.cpu.items() if k.startswith("worker")) or m.cpu.get("node", 0)
    return {
        "case": key,
        "label": label,
        "deltas": n,
        "keys": keys,
        "seconds": round(m.seconds, 2),
        "deltas_per_s": round(n / m.seconds),
        "flips": flips1 - flips0,
        "load_per_s": round(insert_rate),
        "cpu_s": m.cpu,
        "deltas_per_worker_cpu_s": round(n / workers_cpu) if workers_cpu else None,
        "machine_busy": m.machine,
        "exact": got == n,
    }
