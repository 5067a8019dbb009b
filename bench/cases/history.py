"""Reads vs history size: one key's history grown to each size, as tally
increments (folded) and as rows of a plain event table; the latency of
tally.counter_value beside SELECT count(*) over the table at each size."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
from tally.progress import Progress

from bench.counters import fold_all, load
from bench.plan import SCHEMA, Plan
from bench.runners import pct


def time_calls(conn: psycopg.Connection, sql: str, params: tuple, n: int, budget_s: float | None = None) -> list[float]:
    """Latency in ms of `n` calls (or as many as fit in budget_s, at least 3)."""
    conn.execute(sql, params, prepare=True).fetchone()  # warm up, prepare
    times = []
    t_end = time.monotonic() + budget_s if budget_s else None
    for i in range(n):
        t0 = time.perf_counter()
        conn.execute(sql, params, prepare=True).fetchone()
        times.append((time.perf_counter() - t0) * 1000)
        if t_end is not None and i >= 2 and time.monotonic() > t_end:
            break
    return times


def measure(conn: psycopg.Connection, plan: Plan, size: int, add: int) -> dict:
    """Grow the history by ``add`` events to ``size``, then time the reads."""
    load_s = load(conn, "bench_read", add, 1, "30 days", f"history {size:,}: increments")
    fold_s = fold_all(conn, f"history {size:,}: fold")
    t0 = time.monotonic()
    with Progress(1, f"history {size:,}: event table") as bar:
        conn.execute(
            f"INSERT INTO {SCHEMA}.events (subject, at)"
            " SELECT 'hot', now() - random() * interval '30 days' FROM generate_series(1, %s::integer)",
            (add,),
        )
        conn.execute(f"VACUUM ANALYZE {SCHEMA}.events")
        bar.update(1)
    events_s = time.monotonic() - t0
    value = int(conn.execute("SELECT tally.counter_value('bench_read', 'hot')").fetchone()[0])
    counted = int(conn.execute(f"SELECT count(*) FROM {SCHEMA}.events WHERE subject = 'hot'").fetchone()[0])
    with Progress(1, f"history {size:,}: reads"):
        v = time_calls(conn, "SELECT tally.counter_value(%s::text, %s::text)", ("bench_read", "hot"), plan.value_calls)
        c = time_calls(
            conn, f"SELECT count(*) FROM {SCHEMA}.events WHERE subject = %s::text", ("hot",), 200, plan.count_budget_s
        )
    plan_lines = [
        r[0]
        for r in conn.execute(
            "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) SELECT tally.counter_value('bench_read', 'hot')"
        ).fetchall()
    ]
    return {
        "events": size,
        "counter_value": value,
        "count_star": counted,
        "exact": value == size == counted,
        "counter_value_ms": {"p50": round(pct(v, 0.5), 4), "p99": round(pct(v, 0.99), 4), "calls": len(v)},
        "count_star_ms": {"p50": round(pct(c, 0.5), 3), "p99": round(pct(c, 0.99), 3), "calls": len(c)},
        "load_increments_per_s": round(add / load_s),
        "fold_deltas_per_s": round(add / fold_s),
        "event_table_rows_per_s": round(add / events_s),
        "counter_value_explain": plan_lines,
    }


def run(conn: psycopg.Connection, plan: Plan) -> Iterator[dict]:
    """Each size of ``plan.history`` in turn, the history growing from one to the next."""
    conn.execute("SELECT tally.create_counter('bench_read')")
    conn.execute(
        f"CREATE TABLE {SCHEMA}.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " subject text NOT NULL, at timestamptz NOT NULL)"
    )
    conn.execute(f"CREATE INDEX ON {SCHEMA}.events (subject)")
    conn.execute("CALL tally.compact()")
    have = 0
    for size in plan.history:
        yield measure(conn, plan, size, size - have)
        have = size
