"""The ceiling of a fold: a backfill (the same keys and timestamps as a
measured fold) moved by the bare statements a fold has to run, with no tally
machinery (no chunk bookkeeping, no partition checks, no scratch table of
the fold's, no quarantine): DELETE the deltas RETURNING them, pre-aggregated
per (counter, key, minute), then one INSERT ... SELECT ... GROUP BY ... ON
CONFLICT DO UPDATE into the totals and into each rollup table (the counter's
retention applied, as the fold does). Measured in one transaction for all
the deltas (the limit), and in transactions of 100,000 deltas taken in shard
order (a fold's chunking at the default chunk size; these run at the
session's work_mem and make their scratch table per transaction, so a fold
may beat them)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psycopg

from bench.cases.compactor import YEAR
from bench.counters import counter_total, fresh_counter, load_seeded
from bench.runners import busy_share, cpu_seconds, machine_busy

GRANULARITIES = ("minute", "hour", "day", "week", "month")


def _bare_fold(conn: psycopg.Connection, counter_id: int, cutoffs: dict[str, str], chunk: list | None) -> int:
    """One transaction of the ceiling: DELETE the counter's deltas (all, or
    those at the row ids `chunk` = [shard, tids]) RETURNING them,
    pre-aggregated per (counter, key, minute) into a temporary table, then
    one sorted upsert into the totals and one into each rollup table.
    Returns how many deltas it moved."""
    with conn.transaction():
        if chunk is None:
            picked, args = "tally.delta AS d WHERE d.counter_id = %s", [counter_id]
        else:
            picked, args = (
                f"{chunk[0]} AS d WHERE d.ctid = ANY (%s::tid[]) AND d.counter_id = %s",
                [chunk[1], counter_id],
            )
        conn.execute(
            "CREATE TEMPORARY TABLE bare_batch ON COMMIT DROP AS"
            f" WITH moved AS (DELETE FROM {picked} RETURNING d.counter_id, d.key, d.delta, d.at)"
            " SELECT m.counter_id, m.key, date_trunc('minute', m.at) AS minute, sum(m.delta) AS delta, count(*) AS n"
            " FROM moved AS m GROUP BY 1, 2, 3",
            args,
        )
        moved = conn.execute("SELECT coalesce(sum(n), 0)::bigint FROM bare_batch").fetchone()[0]
        conn.execute(
            "INSERT INTO tally.totals AS t (counter_id, key, value)"
            " SELECT b.counter_id, b.key, sum(b.delta) FROM bare_batch AS b GROUP BY 1, 2 ORDER BY 1, 2"
            " ON CONFLICT (counter_id, key) DO UPDATE SET value = t.value + excluded.value"
        )
        for g in GRANULARITIES:
            conn.execute(
                f"INSERT INTO tally.rollup_{g} AS r (counter_id, key, bucket, value)"
                f" SELECT b.counter_id, b.key, date_trunc('{g}', b.minute), sum(b.delta) FROM bare_batch AS b"
                " WHERE b.minute >= %s::timestamptz GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
                " ON CONFLICT (counter_id, key, bucket) DO UPDATE SET value = r.value + excluded.value",
                (cutoffs[g],),
            )
    return moved


def _chunks(conn: psycopg.Connection, counter_id: int, limit: int) -> Iterator[list]:
    """The row ids of the counter's deltas, `limit` at a time, shard by
    shard, each chunk read by a TID range scan from where the last stopped
    (as a fold reads them); yields [shard, tids]."""
    shards = conn.execute(
        "SELECT DISTINCT d.tableoid::regclass::text FROM tally.delta AS d WHERE d.counter_id = %s ORDER BY 1",
        (counter_id,),
    ).fetchall()
    for (shard,) in shards:
        resume = "(0,0)"
        while True:
            tids = conn.execute(
                f"SELECT ARRAY(SELECT s.ctid FROM {shard} AS s WHERE s.ctid >= %s::tid LIMIT %s)::text[]",
                (resume, limit),
            ).fetchone()[0]
            if not tids:
                break
            yield [shard, tids]
            resume = tids[-1]


def measure(dsn: str, name: str, n: int, keys: int, seed: int, limit: int | None) -> dict:
    """The backfill of ``seed`` moved by the bare statements in one
    transaction (limit None) or in transactions of ``limit`` deltas; checked
    exactly like a fold."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        counter_id = fresh_counter(conn, name)
        conn.execute("CALL tally.compact()")
        conn.execute("CHECKPOINT")
        load_seeded(dsn, name, n, YEAR, keys, seed)
        # the counter's retention, as the fold applies it (a constant each)
        cutoffs = {
            g: conn.execute("SELECT tally._cutoff(%s, %s)::text", (counter_id, g)).fetchone()[0] for g in GRANULARITIES
        }
        pid = conn.info.backend_pid
        cpu0 = cpu_seconds(pid)
        busy0 = machine_busy()
        t0 = time.monotonic()
        if limit is None:
            moved = _bare_fold(conn, counter_id, cutoffs, None)
        else:
            moved = sum(_bare_fold(conn, counter_id, cutoffs, chunk) for chunk in _chunks(conn, counter_id, limit))
        secs = time.monotonic() - t0
        cpu_s = cpu_seconds(pid) - cpu0
        busy = busy_share(busy0, machine_busy())
        assert moved == n, (moved, n)
        total = counter_total(conn, name)
        assert total == n, (total, n)
    return {
        "seconds": round(secs, 2),
        "deltas_per_s": round(n / secs),
        "compactor_cpu_s": round(cpu_s, 1),
        "deltas_per_cpu_s": round(n / cpu_s) if cpu_s else None,
        "machine_busy": round(busy, 3),
        "load_1min": round(os.getloadavg()[0], 2),
    }
