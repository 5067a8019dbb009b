"""Single increments, each its own transaction, pgbench clients on one hot
key: naive hot-row UPDATE, INSERT ... ON CONFLICT DO UPDATE, advisory lock +
upsert, tally.increment_counter on a fast and on a durable counter and with
an event id, the ceiling, and a raw INSERT into an unlogged table with no
index (the physical limit of a one-row write).

The "ceiling" case is a SECURITY DEFINER function with pinned search_path
that only reads the active generation and appends the delta of a known
counter id: what tally.increment_counter would cost if its counter lookup
and its checks were free.

A compactor (tally.compact_loop) runs during every case, as it would in
production; the cases that write no deltas leave it idle. Each case also
records where the backends waited, the WAL it wrote per transaction and,
when the server preloads pg_stat_statements, its costliest statements.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psycopg

from bench.plan import SCHEMA, Plan
from bench.runners import Compactor, PgBench, SessionSampler, ratio


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    setup: str  # SQL run once before
    script: str  # one pgbench transaction = one increment
    check: str  # SQL returning how many increments were stored


_UPSERT_LOCK = (
    f"INSERT INTO {SCHEMA}.upsert_lock (key, n) VALUES ('hot', 1)"
    " ON CONFLICT (key) DO UPDATE SET n = upsert_lock.n + 1;"
)

CASES = (
    Case(
        "naive_update",
        "naive hot-row UPDATE",
        f"CREATE TABLE {SCHEMA}.counters (id integer PRIMARY KEY, n bigint NOT NULL);"
        f" INSERT INTO {SCHEMA}.counters VALUES (1, 0);",
        f"UPDATE {SCHEMA}.counters SET n = n + 1 WHERE id = 1;\n",
        f"SELECT n FROM {SCHEMA}.counters WHERE id = 1",
    ),
    Case(
        "upsert",
        "INSERT ... ON CONFLICT DO UPDATE",
        f"CREATE TABLE {SCHEMA}.upsert (key text PRIMARY KEY, n bigint NOT NULL);",
        f"INSERT INTO {SCHEMA}.upsert (key, n) VALUES ('hot', 1) ON CONFLICT (key) DO UPDATE SET n = upsert.n + 1;\n",
        f"SELECT n FROM {SCHEMA}.upsert WHERE key = 'hot'",
    ),
    Case(
        "advisory_upsert",
        "advisory lock + upsert",
        f"CREATE TABLE {SCHEMA}.upsert_lock (key text PRIMARY KEY, n bigint NOT NULL);",
        f"BEGIN;\nSELECT pg_advisory_xact_lock(4242);\n{_UPSERT_LOCK}\nCOMMIT;\n",
        f"SELECT n FROM {SCHEMA}.upsert_lock WHERE key = 'hot'",
    ),
    Case(
        "tally_fast",
        "tally.increment_counter (fast)",
        "SELECT tally.create_counter('bench_fast');",
        "SELECT tally.increment_counter('bench_fast', 'hot');\n",
        "SELECT tally.counter_value('bench_fast', 'hot')",
    ),
    Case(
        "tally_durable",
        "tally.increment_counter (durable)",
        "SELECT tally.create_counter('bench_durable', p_durable => true);",
        "SELECT tally.increment_counter('bench_durable', 'hot');\n",
        "SELECT tally.counter_value('bench_durable', 'hot')",
    ),
    Case(
        "tally_event_id",
        "tally.increment_counter with an event id",
        "SELECT tally.create_counter('bench_ids');",
        # a fresh id per increment (63 random bits per client): every
        # call claims its id in tally.event_ids, none is a replay
        "\\set id random(1, 9223372036854775806)\n"
        "SELECT tally.increment_counter('bench_ids', 'hot', 1, now(), :client_id::text || '-' || :id::text);\n",
        "SELECT tally.counter_value('bench_ids', 'hot')",
    ),
    Case(
        "tally_ceiling",
        "ceiling: definer fn, gen lookup + INSERT",
        # what tally.increment_counter would cost if the counter lookup and
        # the checks were free: a SECURITY DEFINER PL/pgSQL function with
        # the same signature and pinned search_path that reads the active
        # generation (which no writer can skip: it changes at every flip)
        # and appends the delta of a counter whose id it knows
        "SELECT tally.create_counter('bench_ceiling');"
        " DO $do$ BEGIN EXECUTE format($f$"
        f"CREATE FUNCTION {SCHEMA}.ceiling(p_counter text, p_key text, p_delta bigint DEFAULT 1,"
        " p_at timestamptz DEFAULT now(), p_event_id text DEFAULT NULL) RETURNS boolean LANGUAGE plpgsql"
        " SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $b$ BEGIN"
        " INSERT INTO tally.delta (shard, counter_id, key, delta, at)"
        " SELECT tally._shard(w.gen, false, false), %s, p_key, p_delta, p_at FROM tally.write_gen AS w;"
        " RETURN true; END $b$$f$, (SELECT c.id FROM tally.counters AS c WHERE c.name = 'bench_ceiling'));"
        " END $do$;",
        f"SELECT {SCHEMA}.ceiling('bench_ceiling', 'hot');\n",
        "SELECT tally.counter_value('bench_ceiling', 'hot')",
    ),
    Case(
        "raw_unlogged_insert",
        "raw INSERT, unlogged, no index",
        # the same columns as a tally delta row
        f"CREATE UNLOGGED TABLE {SCHEMA}.raw (shard smallint NOT NULL, counter_id integer NOT NULL,"
        " key text NOT NULL, delta bigint NOT NULL, at timestamptz NOT NULL,"
        " written_at timestamptz NOT NULL DEFAULT now());",
        f"INSERT INTO {SCHEMA}.raw (shard, counter_id, key, delta, at) VALUES (0, 1, 'hot', 1, now());\n",
        f"SELECT count(*) FROM {SCHEMA}.raw",
    ),
)
BY_KEY = {c.key: c for c in CASES}


def stored(conn: psycopg.Connection, case: Case) -> int:
    return int(conn.execute(case.check).fetchone()[0])


def _wait(state: str, wtype: str | None, wevent: str | None) -> str:
    """An active backend with no wait event is on (or waiting for) CPU."""
    if state == "active":
        return f"{wtype}:{wevent}" if wtype else "CPU"
    return "Client:ClientRead" if wtype == "Client" else f"{state}"


def enable_statements(conn: psycopg.Connection) -> bool:
    """pg_stat_statements for the profile, when the server preloads it (created in its own schema)."""
    loaded = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
    if "pg_stat_statements" not in loaded:
        return False
    try:
        conn.execute(f"CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA {SCHEMA}")
    except psycopg.Error:
        return False
    conn.execute(f"SET search_path = {SCHEMA}, public")
    return (
        conn.execute(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_stat_statements'"
        ).fetchone()[0]
        == SCHEMA
    )


def _statements(conn: psycopg.Connection) -> list[dict]:
    """pg_stat_statements since the last reset: the statements that took the most time."""
    rows = conn.execute(
        "SELECT toplevel, calls, round(mean_exec_time::numeric * 1000, 1), round(total_exec_time::numeric),"
        " wal_bytes::bigint, left(regexp_replace(query, '\\s+', ' ', 'g'), 90)"
        " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND calls > 100 AND query NOT LIKE '%%pg_stat_activity%%' ORDER BY total_exec_time DESC LIMIT 4"
    ).fetchall()
    return [
        {"toplevel": t, "calls": c, "mean_us": float(m), "total_ms": int(tot), "wal_bytes": w, "query": q}
        for t, c, m, tot, w, q in rows
    ]


def measure(dsn: str, conn: psycopg.Connection, pg: PgBench, plan: Plan, case: Case) -> dict:
    """One case: its setup, then ``plan.clients`` pgbench clients for ``plan.seconds``."""
    conn.execute(case.setup)
    conn.execute("CALL tally.compact()")  # start every case with empty delta shards
    conn.execute("CHECKPOINT")
    if pg.statements:
        conn.execute("SELECT pg_stat_statements_reset()")
    wal0 = conn.execute("SELECT wal_records, wal_bytes::bigint, wal_sync FROM pg_stat_wal").fetchone()
    # a compactor folds meanwhile, as in production (idle in the cases
    # that write no deltas): one compact_loop call spans the case, so its
    # maintenance runs once, at the start, as pg_cron's minute loop does
    with (
        Compactor(dsn, seconds=plan.seconds + 1, interval=0.5),
        SessionSampler(dsn, "pgbench", 0.02, _wait) as waits,
    ):
        tps, done = pg.run(case.key, case.script, plan.clients, plan.seconds, case.label)
    wal1 = conn.execute("SELECT wal_records, wal_bytes::bigint, wal_sync FROM pg_stat_wal").fetchone()
    got = stored(conn, case)
    return {
        "case": case.key,
        "label": case.label,
        "tps": round(tps),
        "transactions": done,
        "stored": got,
        "exact": got == done,
        "clients": plan.clients,
        "seconds": plan.seconds,
        "profile": {
            "waits": waits.shares(6),
            "wal_bytes_per_tx": round((wal1[1] - wal0[1]) / max(done, 1), 1),
            "wal_syncs_per_tx": round((wal1[2] - wal0[2]) / max(done, 1), 3),
            "statements": _statements(conn) if pg.statements else [],
        },
    }


def run(dsn: str, conn: psycopg.Connection, pg: PgBench, plan: Plan) -> Iterator[dict]:
    """Every case in turn; folds what they left after the last."""
    for case in CASES:
        yield measure(dsn, conn, pg, plan, case)
    conn.execute("CALL tally.compact()")


def ratios(single: list[dict]) -> dict:
    """The single pass's ratios (the Redis cases included when they ran)."""
    tps = {r["case"]: r["tps"] for r in single if "tps" in r}

    def r(a: str, b: str) -> float | None:
        return ratio(tps.get(a), tps.get(b))

    return {
        "fast_vs_naive": r("tally_fast", "naive_update"),
        "fast_vs_raw_insert": r("tally_fast", "raw_unlogged_insert"),
        "fast_vs_redis": r("tally_fast", "redis_incr"),
        "fast_vs_redis_aof": r("tally_fast", "redis_incr_aof"),
        "durable_vs_naive": r("tally_durable", "naive_update"),
        "durable_vs_raw_insert": r("tally_durable", "raw_unlogged_insert"),
        "durable_vs_redis": r("tally_durable", "redis_incr"),
        "fast_vs_ceiling": r("tally_fast", "tally_ceiling"),
        "ceiling_vs_raw_insert": r("tally_ceiling", "raw_unlogged_insert"),
        "ceiling_vs_naive": r("tally_ceiling", "naive_update"),
        "event_id_vs_fast": r("tally_event_id", "tally_fast"),
        "event_id_vs_durable": r("tally_event_id", "tally_durable"),
    }
