"""tally beside the usual ways of counting, in one run (`make bench`).

Single increments, each its own transaction, 16 clients (pgbench), one hot key:
  naive hot-row UPDATE, INSERT ... ON CONFLICT DO UPDATE, advisory lock +
  upsert, tally.increment_counter on a fast and on a durable counter, a raw
  INSERT into an unlogged table with no index (the physical limit of a one-row
  write), and Redis INCR (redis-benchmark, a throwaway redis-server on
  loopback: no persistence, then appendonly with appendfsync everysec).
Then: batch increments through tally.increment_counters (1,000 per call),
deltas folded per second, compactor lag under sustained maximum ingest,
tally.counter_value latency with 10^5, 10^6 and 10^7 folded events beside
SELECT count(*) over a plain event table of the same size, and the Python
client from 16 threads of one process: Tally.increment one transaction each,
Tally.increment with group commit, and redis-py INCR (`--only client` runs
just that case and writes client.json; `--only single` runs just the
single-increment pgbench cases, without Redis, and writes single.json).
A compactor (tally.compact_loop) runs during every single-increment case, as
it would in production; the cases that write no deltas leave it idle. The
"ceiling" case is a SECURITY DEFINER function with pinned search_path that
only reads the active generation and appends the delta of a known counter
id: what tally.increment_counter would cost if its counter lookup and its
checks were free. After the single pass, the naive UPDATE, the fast
counter, the ceiling and the raw INSERT run again in interleaved rounds (3
rounds of 6 s; the load of a shared machine moves within a minute): both
hot-path ratios (against the naive UPDATE and the raw INSERT) are the
medians of the per-round ratios, printed after the table and used for the
targets.

Writes latest.json and latest.png into the output directory (default
bench/results/). Exits 1 if a case stored a different count than it committed.

Usage: python bench/run.py --dsn "..." [--quick] [--only client|single] [--out DIR] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from lib import (
    PGBENCH,
    REDIS_SERVER,
    RESULTS,
    Compactor,
    PgBench,
    pct,
    redis_benchmark,
    redis_cli,
    redis_installed,
    redis_server,
    sample_lag,
    say,
    threads_for,
)
from psycopg_pool import ConnectionPool
from tally import GroupCommit, Tally
from tally.progress import Progress

SCHEMA = "tally_bench_tables"  # the baselines' own tables, dropped at the end
BATCH = 1_000  # increments per increment_counters call in the batch case
COUNTERS = (  # the counters the bench creates (and drops at the end)
    "bench_fast",
    "bench_durable",
    "bench_ids",
    "bench_batch",
    "bench_fold_live",
    "bench_fold_backfill",
    "bench_live",
    "bench_read",
    "bench_client",
    "bench_ceiling",
)


@dataclass(frozen=True)
class Plan:
    """How long and how big each part of the run is."""

    seconds: int  # each pgbench case
    clients: int
    batch_clients: int
    redis_seconds: int
    fold_deltas: int
    lag_seconds: int
    history: tuple[int, ...]
    value_calls: int  # counter_value calls per history size
    count_budget_s: float  # time spent on count(*) samples per history size
    client_threads: int = 16  # the Python client case: threads of one process
    client_seconds: float = 10  # each of its three runs
    hot_rounds: int = 3  # interleaved rounds of the hot-path comparison
    hot_seconds: int = 6  # each case of a round


FULL = Plan(
    seconds=15,
    clients=16,
    batch_clients=2,
    redis_seconds=10,
    fold_deltas=1_000_000,
    lag_seconds=20,
    history=(100_000, 1_000_000, 10_000_000),
    value_calls=2_000,
    count_budget_s=8.0,
)
QUICK = Plan(
    seconds=2,
    clients=4,
    batch_clients=2,
    redis_seconds=1,
    fold_deltas=20_000,
    lag_seconds=3,
    history=(1_000, 10_000),
    value_calls=50,
    count_budget_s=0.5,
    client_seconds=1.5,
    hot_rounds=1,
    hot_seconds=2,
)
HOT_CASES = ("naive_update", "tally_fast", "tally_ceiling", "raw_unlogged_insert")  # the hot-path rounds


# -- the single-increment cases ------------------------------------------------
@dataclass(frozen=True)
class Case:
    key: str
    label: str
    setup: str  # SQL run once before
    script: str  # one pgbench transaction = one increment
    check: str  # SQL returning how many increments were stored


def single_cases() -> list[Case]:
    s = SCHEMA
    upsert = (
        f"INSERT INTO {s}.upsert_lock (key, n) VALUES ('hot', 1) ON CONFLICT (key) DO UPDATE SET n = upsert_lock.n + 1;"
    )
    return [
        Case(
            "naive_update",
            "naive hot-row UPDATE",
            f"CREATE TABLE {s}.counters (id integer PRIMARY KEY, n bigint NOT NULL);"
            f" INSERT INTO {s}.counters VALUES (1, 0);",
            f"UPDATE {s}.counters SET n = n + 1 WHERE id = 1;\n",
            f"SELECT n FROM {s}.counters WHERE id = 1",
        ),
        Case(
            "upsert",
            "INSERT ... ON CONFLICT DO UPDATE",
            f"CREATE TABLE {s}.upsert (key text PRIMARY KEY, n bigint NOT NULL);",
            f"INSERT INTO {s}.upsert (key, n) VALUES ('hot', 1) ON CONFLICT (key) DO UPDATE SET n = upsert.n + 1;\n",
            f"SELECT n FROM {s}.upsert WHERE key = 'hot'",
        ),
        Case(
            "advisory_upsert",
            "advisory lock + upsert",
            f"CREATE TABLE {s}.upsert_lock (key text PRIMARY KEY, n bigint NOT NULL);",
            f"BEGIN;\nSELECT pg_advisory_xact_lock(4242);\n{upsert}\nCOMMIT;\n",
            f"SELECT n FROM {s}.upsert_lock WHERE key = 'hot'",
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
            f"CREATE FUNCTION {s}.ceiling(p_counter text, p_key text, p_delta bigint DEFAULT 1,"
            " p_at timestamptz DEFAULT now(), p_event_id text DEFAULT NULL) RETURNS boolean LANGUAGE plpgsql"
            " SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $b$ BEGIN"
            " INSERT INTO tally.delta (shard, counter_id, key, delta, at)"
            " SELECT tally._shard(w.gen, false, false), %s, p_key, p_delta, p_at FROM tally.write_gen AS w;"
            " RETURN true; END $b$$f$, (SELECT c.id FROM tally.counters AS c WHERE c.name = 'bench_ceiling'));"
            " END $do$;",
            f"SELECT {s}.ceiling('bench_ceiling', 'hot');\n",
            "SELECT tally.counter_value('bench_ceiling', 'hot')",
        ),
        Case(
            "raw_unlogged_insert",
            "raw INSERT, unlogged, no index",
            # the same columns as a tally delta row
            f"CREATE UNLOGGED TABLE {s}.raw (shard smallint NOT NULL, counter_id integer NOT NULL, key text NOT NULL,"
            " delta bigint NOT NULL, at timestamptz NOT NULL, written_at timestamptz NOT NULL DEFAULT now());",
            f"INSERT INTO {s}.raw (shard, counter_id, key, delta, at) VALUES (0, 1, 'hot', 1, now());\n",
            f"SELECT count(*) FROM {s}.raw",
        ),
    ]


class WaitSampler:
    """Where the pgbench backends spend their time: pg_stat_activity sampled
    every 20 ms; an active backend with no wait event is on (or waiting for) CPU."""

    def __init__(self, dsn: str) -> None:
        self.dsn, self.stop, self.counts = dsn, threading.Event(), {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as c:
            while not self.stop.is_set():
                for state, wtype, wevent, n in c.execute(
                    "SELECT state, wait_event_type, wait_event, count(*) FROM pg_stat_activity"
                    " WHERE application_name = 'pgbench' AND pid <> pg_backend_pid() GROUP BY 1, 2, 3"
                ):
                    if state == "active":
                        k = f"{wtype}:{wevent}" if wtype else "CPU"
                    else:
                        k = "Client:ClientRead" if wtype == "Client" else f"{state}"
                    self.counts[k] = self.counts.get(k, 0) + n
                time.sleep(0.02)

    def __enter__(self) -> WaitSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def shares(self, top: int = 6) -> dict[str, float]:
        total = sum(self.counts.values()) or 1
        return {k: round(v / total, 3) for k, v in sorted(self.counts.items(), key=lambda kv: -kv[1])[:top]}


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


def run_single(dsn: str, conn: psycopg.Connection, pg: PgBench, plan: Plan) -> list[dict]:
    out = []
    for case in single_cases():
        conn.execute(case.setup)
        conn.execute("CALL tally.compact()")  # start every case with empty delta shards
        conn.execute("CHECKPOINT")
        if pg.statements:
            conn.execute("SELECT pg_stat_statements_reset()")
        wal0 = conn.execute("SELECT wal_records, wal_bytes::bigint, wal_sync FROM pg_stat_wal").fetchone()
        # a compactor folds meanwhile, as in production (idle in the cases
        # that write no deltas): one compact_loop call spans the case, so its
        # maintenance runs once, at the start, as pg_cron's minute loop does
        with Compactor(dsn, seconds=plan.seconds + 1, interval=0.5), WaitSampler(dsn) as waits:
            tps, done = pg.run(case.key, case.script, plan.clients, plan.seconds, case.label)
        wal1 = conn.execute("SELECT wal_records, wal_bytes::bigint, wal_sync FROM pg_stat_wal").fetchone()
        stored = int(conn.execute(case.check).fetchone()[0])
        out.append(
            {
                "case": case.key,
                "label": case.label,
                "tps": round(tps),
                "transactions": done,
                "stored": stored,
                "exact": stored == done,
                "clients": plan.clients,
                "seconds": plan.seconds,
                "profile": {
                    "waits": waits.shares(),
                    "wal_bytes_per_tx": round((wal1[1] - wal0[1]) / max(done, 1), 1),
                    "wal_syncs_per_tx": round((wal1[2] - wal0[2]) / max(done, 1), 3),
                    "statements": _statements(conn) if pg.statements else [],
                },
            }
        )
        say(f"  {case.label:<36} {tps:>10,.0f} increments/s  (stored {stored:,} of {done:,} committed)")
    conn.execute("CALL tally.compact()")
    return out


def run_hot_rounds(dsn: str, conn: psycopg.Connection, pg: PgBench, plan: Plan) -> dict:
    """The hot-path comparison again, interleaved: rounds of naive UPDATE,
    increment_counter, the ceiling and the raw INSERT, a few seconds each,
    a compactor running. On a shared machine the load moves within a
    minute; the median of the per-round ratios is what it moves least.
    Runs after run_single, whose setup made the cases' tables and counters."""
    cases = {c.key: c for c in single_cases()}
    rounds: list[dict[str, int]] = []
    exact = True
    for i in range(plan.hot_rounds):
        conn.execute("CHECKPOINT")
        tps: dict[str, int] = {}
        with Compactor(dsn, seconds=len(HOT_CASES) * (plan.hot_seconds + 1) + 1, interval=0.5):
            for key in HOT_CASES:
                case = cases[key]
                before = int(conn.execute(case.check).fetchone()[0])
                t, done = pg.run(f"hot_{key}", case.script, plan.clients, plan.hot_seconds, f"round {i + 1}: {key}")
                exact = exact and int(conn.execute(case.check).fetchone()[0]) == before + done
                tps[key] = round(t)
        rounds.append(tps)
        say(f"  round {i + 1}: " + ", ".join(f"{k} {v:,}/s" for k, v in tps.items()))

    def med(a: str, b: str) -> float:
        return round(statistics.median(r[a] / r[b] for r in rounds if r[b]), 2)

    ratios = {
        "fast_vs_naive": med("tally_fast", "naive_update"),
        "fast_vs_raw_insert": med("tally_fast", "raw_unlogged_insert"),
        "fast_vs_ceiling": med("tally_fast", "tally_ceiling"),
        "ceiling_vs_naive": med("tally_ceiling", "naive_update"),
        "ceiling_vs_raw_insert": med("tally_ceiling", "raw_unlogged_insert"),
    }
    conn.execute("CALL tally.compact()")
    return {
        "rounds": rounds,
        "ratios": ratios,
        "exact": exact,
        "clients": plan.clients,
        "seconds": plan.hot_seconds,
    }


# -- Redis ------------------------------------------------------------------------
def run_redis(label: str, key: str, plan: Plan, aof: bool) -> dict:
    """INCR on one key through redis-benchmark against a throwaway redis-server."""
    if not redis_installed():
        say(f"  {label:<36} skipped: redis-server / redis-benchmark not installed")
        return {"case": key, "label": label, "skipped": "redis-server not installed"}
    with redis_server(aof) as port:
        # calibrate, then size the measured run to last about redis_seconds
        rate = redis_benchmark(port, plan.clients, 20_000)
        requests = max(20_000, int(rate * plan.redis_seconds))
        result: list[float] = []
        t = threading.Thread(target=lambda: result.append(redis_benchmark(port, plan.clients, requests)))
        t.start()
        with Progress(requests / rate, label) as bar:
            while t.is_alive():
                bar.update(time.monotonic() - bar.started)
                time.sleep(0.1)
        t.join()
        if not result:
            raise RuntimeError("redis-benchmark failed")
        stored = int(redis_cli(port, "GET", "counter:__rand_int__"))
    ops = result[0]
    say(f"  {label:<36} {ops:>10,.0f} increments/s  (stored {stored:,})")
    return {
        "case": key,
        "label": label,
        "tps": round(ops),
        "requests": requests,
        "stored": stored,
        "exact": stored == 20_000 + requests,
        "clients": plan.clients,
        "appendonly": "everysec" if aof else "no",
    }


# -- batch, fold, lag ----------------------------------------------------------------
def run_batch(conn: psycopg.Connection, pg: PgBench, plan: Plan) -> dict:
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
    total = int(
        conn.execute(
            "SELECT coalesce(sum(t.value), 0) FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id"
            " WHERE c.name = 'bench_batch'"
        ).fetchone()[0]
    )
    r = {
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
    say(f"  {label:<36} {tps * BATCH:>10,.0f} increments/s  ({tps:,.1f} calls/s)")
    return r


def _load(conn: psycopg.Connection, counter: str, n: int, keys: int, spread: str, label: str) -> float:
    """n increments of counter over `keys` keys, timestamps over the last `spread`,
    100,000 per increment_counters call, arrays built in the server; returns seconds."""
    step = 100_000
    t0 = time.monotonic()
    with Progress(n, label, unit="increments") as bar:
        done = 0
        while done < n:
            k = min(step, n - done)
            conn.execute(
                "SELECT tally.increment_counters(array_fill(%(c)s::text, ARRAY[%(k)s::integer]),"
                " (SELECT array_agg(CASE WHEN %(keys)s::integer = 1 THEN 'hot'"
                "   ELSE (1 + floor(random() * %(keys)s::integer))::text END)"
                "  FROM generate_series(1, %(k)s::integer)),"
                " array_fill(1::bigint, ARRAY[%(k)s::integer]),"
                " (SELECT array_agg(now() - random() * %(spread)s::interval) FROM generate_series(1, %(k)s::integer)))",
                {"c": counter, "k": k, "keys": keys, "spread": spread},
            )
            done += k
            bar.update(done)
    return time.monotonic() - t0


def _fold_all(conn: psycopg.Connection, label: str) -> float:
    """CALL tally.compact() until tally.compactor_lag shows nothing pending; returns seconds."""
    total = int(conn.execute("SELECT coalesce(sum(pending_deltas), 0) FROM tally.compactor_lag").fetchone()[0])
    t0 = time.monotonic()
    with Progress(total, label, unit="deltas") as bar:
        while True:
            conn.execute("CALL tally.compact()")
            left = int(conn.execute("SELECT coalesce(sum(pending_deltas), 0) FROM tally.compactor_lag").fetchone()[0])
            bar.update(total - left)
            if left == 0:
                break
    return time.monotonic() - t0


def run_fold(conn: psycopg.Connection, plan: Plan) -> list[dict]:
    out = []
    for case, spread in (("live (last minute)", "1 minute"), ("backfill (last year)", "365 days")):
        name = "bench_fold_live" if spread == "1 minute" else "bench_fold_backfill"
        conn.execute("SELECT tally.create_counter(%s::text)", (name,))
        conn.execute("CALL tally.compact()")
        n = plan.fold_deltas
        _load(conn, name, n, 1_000, spread, f"fold {case}: load")
        secs = _fold_all(conn, f"fold {case}: fold")
        out.append(
            {"case": case, "deltas": n, "keys": 1_000, "seconds": round(secs, 3), "deltas_per_s": round(n / secs)}
        )
        say(f"  fold rate, {case:<25} {n:>10,} deltas in {secs:6.2f} s = {n / secs:>10,.0f} deltas/s")
    return out


def run_lag(dsn: str, conn: psycopg.Connection, pg: PgBench, plan: Plan) -> dict:
    """Maximum single-row ingest (pgbench, 1,000 keys) with tally.compact_loop folding meanwhile."""
    conn.execute("SELECT tally.create_counter('bench_live')")
    conn.execute("CALL tally.compact()")
    script = "\\set k random(1, 1000)\nSELECT tally.increment_counter('bench_live', :k::text);\n"
    with Compactor(dsn, seconds=2, interval=0.5), Progress(plan.lag_seconds, "lag under max ingest") as bar:
        proc = pg.start("lag", script, plan.clients, plan.lag_seconds)
        lags = sample_lag(dsn, lambda: proc.poll() is not None, tick=lambda: bar.update(time.monotonic() - bar.started))
        tps, done = pg.result(proc)
    _fold_all(conn, "lag: fold the rest")
    stored = int(
        conn.execute(
            "SELECT coalesce(sum(t.value), 0) FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id"
            " WHERE c.name = 'bench_live'"
        ).fetchone()[0]
    )
    lags = lags or [0.0]
    r = {
        "ingest_per_s": round(tps),
        "increments": done,
        "stored": stored,
        "exact": stored == done,
        "lag_p50_s": round(statistics.median(lags), 3),
        "lag_p99_s": round(pct(lags, 0.99), 3),
        "lag_max_s": round(max(lags), 3),
        "seconds": plan.lag_seconds,
        "clients": plan.clients,
    }
    say(
        f"  lag under max ingest: {tps:,.0f} increments/s with the compactor running; lag p50 "
        f"{r['lag_p50_s']:.2f} s, p99 {r['lag_p99_s']:.2f} s, max {r['lag_max_s']:.2f} s"
    )
    return r


# -- reads vs history -------------------------------------------------------------------
def _time_calls(
    conn: psycopg.Connection, sql: str, params: tuple, n: int, budget_s: float | None = None
) -> list[float]:
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


def run_history(conn: psycopg.Connection, plan: Plan) -> list[dict]:
    """Grow one key's history to each size: tally increments (folded) and
    rows of a plain event table; time counter_value vs count(*) at each size."""
    conn.execute("SELECT tally.create_counter('bench_read')")
    conn.execute(
        f"CREATE TABLE {SCHEMA}.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        " subject text NOT NULL, at timestamptz NOT NULL)"
    )
    conn.execute(f"CREATE INDEX ON {SCHEMA}.events (subject)")
    conn.execute("CALL tally.compact()")
    have = 0
    out = []
    for size in plan.history:
        add = size - have
        load_s = _load(conn, "bench_read", add, 1, "30 days", f"history {size:,}: increments")
        fold_s = _fold_all(conn, f"history {size:,}: fold")
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
        have = size
        value = int(conn.execute("SELECT tally.counter_value('bench_read', 'hot')").fetchone()[0])
        counted = int(conn.execute(f"SELECT count(*) FROM {SCHEMA}.events WHERE subject = 'hot'").fetchone()[0])
        with Progress(1, f"history {size:,}: reads"):
            v = _time_calls(
                conn, "SELECT tally.counter_value(%s::text, %s::text)", ("bench_read", "hot"), plan.value_calls
            )
            c = _time_calls(
                conn,
                f"SELECT count(*) FROM {SCHEMA}.events WHERE subject = %s::text",
                ("hot",),
                200,
                plan.count_budget_s,
            )
        plan_lines = [
            r[0]
            for r in conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) SELECT tally.counter_value('bench_read', 'hot')"
            ).fetchall()
        ]
        r = {
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
        out.append(r)
        say(
            f"  history {size:>11,}: counter_value p50 {r['counter_value_ms']['p50']:.3f} ms"
            f" p99 {r['counter_value_ms']['p99']:.3f} ms | count(*) p50 {r['count_star_ms']['p50']:,.1f} ms"
            f" p99 {r['count_star_ms']['p99']:,.1f} ms"
        )
    return out


# -- the Python client from many threads ----------------------------------------------------
def run_client(dsn: str, conn: psycopg.Connection, plan: Plan) -> dict:
    """Tally.increment from ``client_threads`` threads of this process on one
    hot key: one transaction each (a pool of one connection per thread), then
    with group commit (same pool), then redis-py INCR on a throwaway Redis;
    the Python client's overhead is in all three."""
    n, secs = plan.client_threads, plan.client_seconds
    conn.execute("SELECT tally.create_counter('bench_client')")
    cases = []
    with ConnectionPool(dsn, min_size=n, max_size=n, open=True) as pool:
        pool.wait()
        plain = Tally(pool)
        for key, label, group, keys in (
            ("plain", "Tally.increment, a transaction each", None, 1),
            ("coalesced", "Tally.increment, group commit", GroupCommit(), 1),
            ("coalesced_keys", "  the same, 1,000 keys", GroupCommit(), 1_000),
        ):
            with Tally(pool, group_commit=group) as t:
                threads_for(n, min(1.0, secs / 5), lambda _, t=t: t.increment("bench_client", "warm-up"), "warm-up")

                def call(_: int, t: Tally = t, k: str = key, keys: int = keys) -> None:
                    t.increment("bench_client", k if keys == 1 else f"{k}:{random.randrange(keys)}")

                calls, elapsed = threads_for(n, secs, call, label.strip())
                stats = t.group_commit_stats
            stored = (
                plain.value("bench_client", key)
                if keys == 1
                else int(
                    conn.execute(
                        "SELECT sum(tally.counter_value('bench_client', %s || ':' || i))"
                        " FROM generate_series(0, %s) AS i",
                        (key, keys - 1),
                    ).fetchone()[0]
                )
            )
            r = {"case": key, "label": label, "tps": round(calls / elapsed), "calls": calls, "stored": stored}
            r["exact"] = stored == calls
            if stats is not None:
                r["group_commit"] = stats.__dict__ | {"mean_batch": round(stats.increments / max(stats.batches, 1), 1)}
            cases.append(r)
            say(f"  {label:<40} {r['tps']:>10,} increments/s  (stored {stored:,} of {calls:,} acknowledged)")
    cases.append(_redis_py(plan))
    tps = {c["case"]: c.get("tps") for c in cases}

    def ratio(a: str, b: str) -> float | None:
        return round(tps[a] / tps[b], 2) if tps.get(a) and tps.get(b) else None

    return {
        "threads": n,
        "seconds": secs,
        "cases": cases,
        "ratios": {
            "coalesced_vs_plain": ratio("coalesced", "plain"),
            "coalesced_vs_redis": ratio("coalesced", "redis"),
            "coalesced_keys_vs_plain": ratio("coalesced_keys", "plain"),
        },
    }


def _redis_py(plan: Plan) -> dict:
    label = "redis-py INCR"
    try:
        import redis
    except ImportError:
        say(f"  {label:<40} skipped: the redis package is not installed")
        return {"case": "redis", "label": label, "skipped": "redis-py not installed"}
    if not redis_installed():
        say(f"  {label:<40} skipped: redis-server not installed")
        return {"case": "redis", "label": label, "skipped": "redis-server not installed"}
    n, secs = plan.client_threads, plan.client_seconds
    with redis_server(aof=False) as port:
        r = redis.Redis(host="127.0.0.1", port=port, max_connections=n)
        try:
            threads_for(n, min(1.0, secs / 5), lambda _: r.incr("warm-up"), "warm-up")
            calls, elapsed = threads_for(n, secs, lambda _: r.incr("hot"), label)
            stored = int(r.get("hot") or 0)
        finally:
            r.close()
    out = {"case": "redis", "label": label, "tps": round(calls / elapsed), "calls": calls, "stored": stored}
    out["exact"] = stored == calls
    say(f"  {label:<40} {out['tps']:>10,} increments/s  (stored {stored:,} of {calls:,} acknowledged)")
    return out


def client_targets(client: dict) -> list[dict]:
    r = client["ratios"]
    return [
        {
            "target": "group commit >= 3x plain Tally.increment",
            "measured": r["coalesced_vs_plain"],
            "met": (r["coalesced_vs_plain"] or 0) >= 3,
        },
        {
            "target": "group commit ahead of redis-py INCR",
            "measured": r["coalesced_vs_redis"],
            "met": (r["coalesced_vs_redis"] or 0) > 1,
        },
    ]


def print_client_table(client: dict) -> None:
    tps = {c["case"]: c.get("tps") for c in client["cases"]}

    def x(a: int | None, b: int | None) -> str:
        return f"{a / b:.2f}" if a and b else "-"

    say("")
    say(
        f"{'Python client, ' + str(client['threads']) + ' threads of one process':<40}"
        f" {'incr/s':>10} {'÷ plain':>8} {'÷ redis-py':>10}  exact"
    )
    for c in client["cases"]:
        if "tps" not in c:
            say(f"{c['label']:<40} {'skipped':>10}")
            continue
        batch = f"  (mean batch {c['group_commit']['mean_batch']})" if "group_commit" in c else ""
        say(
            f"{c['label']:<40} {c['tps']:>10,} {x(c['tps'], tps.get('plain')):>8}"
            f" {x(c['tps'], tps.get('redis')):>10}  {'yes' if c['exact'] else 'NO'}{batch}"
        )


# -- environment, table, chart ----------------------------------------------------------
def environment(conn: psycopg.Connection, plan: Plan) -> dict:
    def setting(name: str) -> str:
        return str(conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0])

    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )

    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "not installed"

    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": setting("server_version"),
        "postgres_settings": {
            n: setting(n) for n in ("shared_buffers", "synchronous_commit", "fsync", "wal_level", "max_wal_size")
        },
        "pgbench": version([PGBENCH, "--version"]),
        "redis": version([REDIS_SERVER, "--version"]),
        "load_average_at_start": list(os.getloadavg()),
        "plan": plan.__dict__,
    }


def ratios(single: list[dict]) -> dict:
    tps = {r["case"]: r["tps"] for r in single if "tps" in r}

    def ratio(a: str, b: str) -> float | None:
        return round(tps[a] / tps[b], 2) if a in tps and b in tps and tps[b] else None

    return {
        "fast_vs_naive": ratio("tally_fast", "naive_update"),
        "fast_vs_raw_insert": ratio("tally_fast", "raw_unlogged_insert"),
        "fast_vs_redis": ratio("tally_fast", "redis_incr"),
        "fast_vs_redis_aof": ratio("tally_fast", "redis_incr_aof"),
        "durable_vs_naive": ratio("tally_durable", "naive_update"),
        "durable_vs_raw_insert": ratio("tally_durable", "raw_unlogged_insert"),
        "durable_vs_redis": ratio("tally_durable", "redis_incr"),
        "fast_vs_ceiling": ratio("tally_fast", "tally_ceiling"),
        "ceiling_vs_raw_insert": ratio("tally_ceiling", "raw_unlogged_insert"),
        "ceiling_vs_naive": ratio("tally_ceiling", "naive_update"),
        "event_id_vs_fast": ratio("tally_event_id", "tally_fast"),
        "event_id_vs_durable": ratio("tally_event_id", "tally_durable"),
    }


def single_targets(res: dict) -> list[dict]:
    """The hot-path targets: increment_counter against the naive UPDATE and
    the raw INSERT (medians of the interleaved rounds), durable against the
    naive UPDATE (the single pass)."""
    h, r = res["hot"]["ratios"], res["ratios"]

    def t(name: str, value: object, met: bool) -> dict:
        return {"target": name, "measured": value, "met": bool(met)}

    return [
        t("fast >= 10x naive UPDATE", h["fast_vs_naive"], h["fast_vs_naive"] >= 10),
        t("fast >= 60% of raw unlogged INSERT", h["fast_vs_raw_insert"], h["fast_vs_raw_insert"] >= 0.6),
        t("durable >= 5x naive UPDATE", r["durable_vs_naive"], (r["durable_vs_naive"] or 0) >= 5),
    ]


def print_hot_path(res: dict) -> None:
    """The two hot-path ratios of this run (median of the interleaved rounds), and where the ceiling is."""
    hot = res["hot"]
    h = hot["ratios"]
    say("")
    say(
        f"hot path, tally.increment_counter (fast), median of {len(hot['rounds'])} interleaved round(s):"
        f" {h['fast_vs_naive']:.2f}x the naive UPDATE (target >= 10x),"
        f" {h['fast_vs_raw_insert']:.2f}x the raw unlogged INSERT (target >= 0.60x)"
    )
    say(
        f"  ceiling (definer fn, generation lookup + INSERT): {h['ceiling_vs_naive']:.2f}x naive,"
        f" {h['ceiling_vs_raw_insert']:.2f}x raw; increment_counter reaches {h['fast_vs_ceiling']:.2f}x of it"
    )


def targets(res: dict) -> list[dict]:
    hist = res["history"]
    largest = hist[-1]["counter_value_ms"]["p50"] if hist else None
    smallest = hist[0]["counter_value_ms"]["p50"] if hist else None
    flat = largest is not None and smallest is not None and largest <= max(2 * smallest, smallest + 0.2)

    def t(name: str, value: object, met: bool) -> dict:
        return {"target": name, "measured": value, "met": bool(met)}

    return [
        *single_targets(res),
        t(
            "batch >= 250,000 increments/s",
            res["batch"]["increments_per_s"],
            res["batch"]["increments_per_s"] >= 250_000,
        ),
        t(
            f"counter_value p50 < 1 ms at {hist[-1]['events']:,} events" if hist else "counter_value p50 < 1 ms",
            largest,
            largest is not None and largest < 1,
        ),
        t("counter_value flat as history grows", [h["counter_value_ms"]["p50"] for h in hist], flat),
    ]


def print_table(res: dict) -> None:
    _print_single(res)
    print_hot_path(res)
    print_client_table(res["client"])
    say("")
    for t in res["targets"]:
        say(f"  [{'met ' if t['met'] else 'MISS'}] {t['target']}: {t['measured']}")


def _print_single(res: dict) -> None:
    single = [r for r in res["single"] if "tps" in r]
    tps = {r["case"]: r["tps"] for r in single}
    naive, raw, redis = tps.get("naive_update"), tps.get("raw_unlogged_insert"), tps.get("redis_incr")

    def x(a: float, b: float | None) -> str:
        return f"{a / b:.2f}" if b else "-"

    say("")
    say(
        f"{'one increment per transaction, ' + str(res['environment']['plan']['clients']) + ' clients':<40}"
        f" {'incr/s':>10} {'÷ naive':>8} {'÷ raw':>8} {'÷ Redis':>8}  exact"
    )
    for r in single:
        say(
            f"{r['label']:<40} {r['tps']:>10,} {x(r['tps'], naive):>8} {x(r['tps'], raw):>8}"
            f" {x(r['tps'], redis):>8}  {'yes' if r['exact'] else 'NO'}"
        )
    if "batch" not in res:  # --only single
        return
    b = res["batch"]
    say(
        f"{b['label']:<40} {b['increments_per_s']:>10,} {x(b['increments_per_s'], naive):>8}"
        f" {x(b['increments_per_s'], raw):>8} {x(b['increments_per_s'], redis):>8}  {'yes' if b['exact'] else 'NO'}"
    )
    say("")
    say(f"{'history (events)':<18} {'counter_value p50/p99 ms':>26} {'count(*) p50/p99 ms':>24}")
    for h in res["history"]:
        v, c = h["counter_value_ms"], h["count_star_ms"]
        say(f"{h['events']:<18,} {v['p50']:>12.3f} / {v['p99']:<11.3f} {c['p50']:>11,.1f} / {c['p99']:<10,.1f}")


def draw_chart(res: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("  (matplotlib not installed: no chart)")
        return False
    single = [r for r in res["single"] if "tps" in r]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.25, 1]})
    labels = [r["label"] for r in single]
    values = [r["tps"] for r in single]
    colors = [
        "#1f77b4" if r["case"].startswith("tally") else "#c44e52" if "redis" in r["case"] else "#8c8c8c" for r in single
    ]
    ax1.barh(labels, values, color=colors)
    ax1.invert_yaxis()
    for i, v in enumerate(values):
        ax1.text(v, i, f" {v:,}", va="center", fontsize=8)
    ax1.set_xlabel("increments per second (one per transaction)")
    env = res["environment"]
    ax1.set_title(
        f"Hot key, {env['plan']['clients']} clients, {env['cores']} cores, PostgreSQL {env['postgres'].split()[0]}\n"
        f"batch (increment_counters, {BATCH:,}/call): {res['batch']['increments_per_s']:,}/s",
        fontsize=9,
    )
    ax1.set_xlim(0, max(values) * 1.25 if values else 1)
    hist = res["history"]
    sizes = [h["events"] for h in hist]
    ax2.plot(sizes, [h["counter_value_ms"]["p50"] for h in hist], "o-", color="#1f77b4", label="counter_value p50")
    ax2.plot(
        sizes,
        [h["counter_value_ms"]["p99"] for h in hist],
        "o--",
        color="#1f77b4",
        alpha=0.5,
        label="counter_value p99",
    )
    ax2.plot(sizes, [h["count_star_ms"]["p50"] for h in hist], "s-", color="#8c8c8c", label="SELECT count(*) p50")
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel("events in the history of the key")
    ax2.set_ylabel("read latency, ms (log)")
    ax2.set_title("Read latency vs history size", fontsize=9)
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_suffix(".png.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
    return True


# -- the run ----------------------------------------------------------------------------------------
def _step(title: str, fn: Callable[[], object]) -> object:
    say(f"\n{title}")
    return fn()


def run(dsn: str, out_dir: Path | None = None, quick: bool = False, keep: bool = False) -> dict:
    """Run every case against the database of ``dsn`` (migrated); returns the results."""
    plan = QUICK if quick else FULL
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.monotonic()
    pg = PgBench(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        _cleanup(conn)
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        res: dict = {"environment": environment(conn, plan)}
        say(
            f"tally bench{' --quick' if quick else ''}: {plan.clients} clients, {plan.seconds} s per case,"
            f" {res['environment']['cores']} cores, PostgreSQL {res['environment']['postgres']}"
        )
        try:
            pg.statements = _enable_statements(conn)
            single = _step(
                "Single increments, each its own transaction, one hot key", lambda: run_single(dsn, conn, pg, plan)
            )
            res["hot"] = _step("The hot path again, interleaved rounds", lambda: run_hot_rounds(dsn, conn, pg, plan))
            single.append(run_redis("Redis INCR (no persistence)", "redis_incr", plan, aof=False))
            single.append(run_redis("Redis INCR (appendfsync everysec)", "redis_incr_aof", plan, aof=True))
            res["single"] = single
            res["batch"] = _step("Batch increments", lambda: run_batch(conn, pg, plan))
            res["fold_rate"] = _step("Folding", lambda: run_fold(conn, plan))
            res["lag"] = _step("Lag under sustained maximum ingest", lambda: run_lag(dsn, conn, pg, plan))
            res["history"] = _step("Reads vs history size", lambda: run_history(conn, plan))
            res["client"] = _step(
                f"The Python client, {plan.client_threads} threads of one process, one hot key",
                lambda: run_client(dsn, conn, plan),
            )
        finally:
            pg.close()
            if not keep:
                _cleanup(conn)
    res["ratios"] = ratios(res["single"])
    res["targets"] = targets(res) + client_targets(res["client"])
    res["seconds"] = round(time.monotonic() - t_start, 1)
    print_table(res)
    (out_dir / "latest.json").write_text(json.dumps(res, indent=2) + "\n")
    drew = draw_chart(res, out_dir / "latest.png")
    say(f"\nwritten {out_dir / 'latest.json'}" + (f" and {out_dir / 'latest.png'}" if drew else ""))
    say(f"bench took {res['seconds']:.0f} s")
    return res


def _enable_statements(conn: psycopg.Connection) -> bool:
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


def _cleanup(conn: psycopg.Connection) -> None:
    conn.execute("RESET search_path")
    conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    for (name,) in conn.execute(
        "SELECT name FROM tally.counters WHERE name = ANY(%s::text[]) ORDER BY name", (list(COUNTERS),)
    ).fetchall():
        conn.execute("SELECT tally.drop_counter(%s::text)", (name,))


def exact(res: dict) -> bool:
    """Every case stored exactly the count it committed."""
    single = all(r.get("exact", True) for r in res["single"])
    client = all(c.get("exact", True) for c in res["client"]["cases"])
    return (
        single
        and client
        and res["hot"]["exact"]
        and res["batch"]["exact"]
        and res["lag"]["exact"]
        and all(h["exact"] for h in res["history"])
    )


def run_only_client(dsn: str, out_dir: Path | None = None, quick: bool = False, keep: bool = False) -> dict:
    """Only the Python client case (``--only client``); writes client.json."""
    plan = QUICK if quick else FULL
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        _cleanup(conn)
        res: dict = {"environment": environment(conn, plan)}
        say(
            f"tally bench --only client{' --quick' if quick else ''}: {plan.client_threads} threads,"
            f" {plan.client_seconds:g} s per case, {res['environment']['cores']} cores,"
            f" PostgreSQL {res['environment']['postgres']}"
        )
        try:
            res["client"] = _step(
                f"The Python client, {plan.client_threads} threads of one process, one hot key",
                lambda: run_client(dsn, conn, plan),
            )
        finally:
            if not keep:
                _cleanup(conn)
    res["targets"] = client_targets(res["client"])
    print_client_table(res["client"])
    say("")
    for t in res["targets"]:
        say(f"  [{'met ' if t['met'] else 'MISS'}] {t['target']}: {t['measured']}")
    (out_dir / "client.json").write_text(json.dumps(res, indent=2) + "\n")
    say(f"\nwritten {out_dir / 'client.json'}")
    return res


def run_only_single(dsn: str, out_dir: Path | None = None, quick: bool = False, keep: bool = False) -> dict:
    """Only the single-increment pgbench cases (``--only single``: no Redis); writes single.json."""
    plan = QUICK if quick else FULL
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    pg = PgBench(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        _cleanup(conn)
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        res: dict = {"environment": environment(conn, plan)}
        say(
            f"tally bench --only single{' --quick' if quick else ''}: {plan.clients} clients,"
            f" {plan.seconds} s per case, {res['environment']['cores']} cores,"
            f" PostgreSQL {res['environment']['postgres']}"
        )
        try:
            pg.statements = _enable_statements(conn)
            res["single"] = _step(
                "Single increments, each its own transaction, one hot key", lambda: run_single(dsn, conn, pg, plan)
            )
            res["hot"] = _step("The hot path again, interleaved rounds", lambda: run_hot_rounds(dsn, conn, pg, plan))
        finally:
            pg.close()
            if not keep:
                _cleanup(conn)
    res["ratios"] = ratios(res["single"])
    res["targets"] = single_targets(res)
    _print_single(res)
    print_hot_path(res)
    say("")
    for t in res["targets"]:
        say(f"  [{'met ' if t['met'] else 'MISS'}] {t['target']}: {t['measured']}")
    (out_dir / "single.json").write_text(json.dumps(res, indent=2) + "\n")
    say(f"\nwritten {out_dir / 'single.json'}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="bench/run.py", description="tally beside UPDATE, upserts, a raw INSERT and Redis (make bench)"
    )
    ap.add_argument("--dsn", default=os.environ.get("TALLY_DSN"), help="a migrated database (default: $TALLY_DSN)")
    ap.add_argument("--quick", action="store_true", help="a small, fast run (a smoke test; numbers mean little)")
    ap.add_argument("--out", type=Path, help=f"directory for latest.json and latest.png (default: {RESULTS})")
    ap.add_argument("--keep", action="store_true", help="keep the bench counters and tables afterwards")
    ap.add_argument(
        "--only",
        choices=["client", "single"],
        help="run one part alone: client = the Python client from 16 threads (writes client.json);"
        " single = the single-increment pgbench cases without Redis, with the hot-path ratios (single.json)",
    )
    args = ap.parse_args(argv)
    if not args.dsn:
        ap.error("pass --dsn or set TALLY_DSN")
    if args.only == "client":
        res = run_only_client(args.dsn, out_dir=args.out, quick=args.quick, keep=args.keep)
        if not all(c.get("exact", True) for c in res["client"]["cases"]):
            print("tally bench: a client case stored a different count than it acknowledged", file=sys.stderr)
            return 1
        return 0
    if args.only == "single":
        res = run_only_single(args.dsn, out_dir=args.out, quick=args.quick, keep=args.keep)
        if not (all(r["exact"] for r in res["single"]) and res["hot"]["exact"]):
            print("tally bench: a single case stored a different count than it committed", file=sys.stderr)
            return 1
        return 0
    res = run(args.dsn, out_dir=args.out, quick=args.quick, keep=args.keep)
    if not exact(res):
        print("tally bench: some case stored a different count than it committed (see latest.json)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
