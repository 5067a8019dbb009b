"""Reads vs history size: one key's history grown to each size, as tally
increments (folded) and as rows of a plain event table; the latency of
tally.counter_value beside SELECT count(*) over the table at each size, of
tally.counter_window over the last 7 days (whole days, hours and minutes)
beside a count(*) of those days over the table's (subject, at) index, and
of tally.counter_values for a page of 100 keys beside 100 counter_value
calls from the client."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
from tally.progress import Progress

from bench.counters import fold_all, load
from bench.plan import SCHEMA, Plan
from bench.runners import pct

PAGE = 100  # keys read by counter_values: 'hot' and PAGE - 1 others with PAGE_EVENTS each
PAGE_EVENTS = 1_000
# the last 7 days: from a day boundary to the next minute boundary (whole
# days, then hours, then minutes: every granularity a default counter keeps)
WINDOW = "SELECT date_trunc('day', now() - interval '7 days', 'UTC'), date_trunc('minute', now()) + interval '1 minute'"
# every increment of the history (its times are within the last 30 days)
ALL_TIME = (
    "SELECT date_trunc('day', now() - interval '31 days', 'UTC'), date_trunc('minute', now()) + interval '1 minute'"
)


def time_page(conn: psycopg.Connection, keys: list[str], n: int) -> list[float]:
    """Latency in ms of reading ``keys`` one counter_value call at a time."""
    sql = "SELECT tally.counter_value(%s::text, %s::text)"
    conn.execute(sql, ("bench_read", keys[0]), prepare=True).fetchone()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        for k in keys:
            conn.execute(sql, ("bench_read", k), prepare=True).fetchone()
        times.append((time.perf_counter() - t0) * 1000)
    return times


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
        w_from, w_to = conn.execute(WINDOW).fetchone()
        w = time_calls(
            conn,
            "SELECT tally.counter_window(%s::text, %s::text, %s::timestamptz, %s::timestamptz)",
            ("bench_read", "hot", w_from, w_to),
            plan.value_calls,
        )
        cw = time_calls(
            conn,
            f"SELECT count(*) FROM {SCHEMA}.events WHERE subject = %s::text AND at >= %s AND at < %s",
            ("hot", w_from, w_to),
            200,
            plan.count_budget_s,
        )
        page = ["hot"] + [f"page-{i}" for i in range(1, PAGE)]
        pv = time_calls(
            conn,
            "SELECT count(*) FROM tally.counter_values(%s::text, %s::text[])",
            ("bench_read", page),
            plan.value_calls,
        )
        pc = time_page(conn, page, max(3, plan.value_calls // PAGE))
    a_from, a_to = conn.execute(ALL_TIME).fetchone()
    whole = int(conn.execute("SELECT tally.counter_window('bench_read', 'hot', %s, %s)", (a_from, a_to)).fetchone()[0])
    paged = conn.execute("SELECT key, value FROM tally.counter_values('bench_read', %s)", (page,)).fetchall()
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
        "exact": value == size == counted == whole and paged == [("hot", size)] + [(k, PAGE_EVENTS) for k in page[1:]],
        "counter_value_ms": {"p50": round(pct(v, 0.5), 4), "p99": round(pct(v, 0.99), 4), "calls": len(v)},
        "count_star_ms": {"p50": round(pct(c, 0.5), 3), "p99": round(pct(c, 0.99), 3), "calls": len(c)},
        "counter_window_ms": {"p50": round(pct(w, 0.5), 4), "p99": round(pct(w, 0.99), 4), "calls": len(w)},
        "count_window_ms": {"p50": round(pct(cw, 0.5), 3), "p99": round(pct(cw, 0.99), 3), "calls": len(cw)},
        "counter_values_ms": {"p50": round(pct(pv, 0.5), 4), "p99": round(pct(pv, 0.99), 4), "calls": len(pv)},
        "counter_value_x100_ms": {"p50": round(pct(pc, 0.5), 3), "p99": round(pct(pc, 0.99), 3), "calls": len(pc)},
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
    conn.execute(f"CREATE INDEX ON {SCHEMA}.events (subject, at)")
    # the page's other keys, PAGE_EVENTS each
    conn.execute(
        "SELECT tally.increment_counters(array_fill('bench_read'::text, ARRAY[n]),"
        " ARRAY(SELECT 'page-' || (1 + i %% %s::integer) FROM generate_series(0, n - 1) AS i),"
        " array_fill(1::bigint, ARRAY[n]),"
        " ARRAY(SELECT now() - random() * interval '30 days' FROM generate_series(1, n)))"
        " FROM (SELECT %s::integer * %s::integer AS n) AS s",
        (PAGE - 1, PAGE - 1, PAGE_EVENTS),
    )
    conn.execute("CALL tally.compact()")
    have = 0
    for size in plan.history:
        yield measure(conn, plan, size, size - have)
        have = size
