"""The Python client from ``plan.client_threads`` threads of one process on
one hot key: Tally.increment one transaction each (a pool of one connection
per thread), then with group commit (same pool; on one key, then over 1,000
keys), then redis-py INCR on a throwaway Redis; the Python client's
overhead is in all three."""

from __future__ import annotations

import random
from collections.abc import Iterator

import psycopg
from psycopg_pool import ConnectionPool
from tally import GroupCommit, Tally

from bench.plan import Plan
from bench.runners import ratio, redis_installed, redis_server, threads_for

CASES = (
    ("plain", "Tally.increment, a transaction each", False, 1),
    ("coalesced", "Tally.increment, group commit", True, 1),
    ("coalesced_keys", "  the same, 1,000 keys", True, 1_000),
)


def _stored(conn: psycopg.Connection, plain: Tally, key: str, keys: int) -> int:
    if keys == 1:
        return plain.value("bench_client", key)
    return int(
        conn.execute(
            "SELECT sum(tally.counter_value('bench_client', %s || ':' || i)) FROM generate_series(0, %s) AS i",
            (key, keys - 1),
        ).fetchone()[0]
    )


def _tally(dsn: str, conn: psycopg.Connection, plan: Plan) -> Iterator[dict]:
    n, secs = plan.client_threads, plan.client_seconds
    conn.execute("SELECT tally.create_counter('bench_client')")
    with ConnectionPool(dsn, min_size=n, max_size=n, open=True) as pool:
        pool.wait()
        plain = Tally(pool)
        for key, label, group, keys in CASES:
            with Tally(pool, group_commit=GroupCommit() if group else None) as t:
                threads_for(n, min(1.0, secs / 5), lambda _, t=t: t.increment("bench_client", "warm-up"), "warm-up")

                def call(_: int, t: Tally = t, k: str = key, keys: int = keys) -> None:
                    t.increment("bench_client", k if keys == 1 else f"{k}:{random.randrange(keys)}")

                calls, elapsed = threads_for(n, secs, call, label.strip())
                stats = t.group_commit_stats
            stored = _stored(conn, plain, key, keys)
            r = {"case": key, "label": label, "tps": round(calls / elapsed), "calls": calls, "stored": stored}
            r["exact"] = stored == calls
            if stats is not None:
                r["group_commit"] = stats.__dict__ | {"mean_batch": round(stats.increments / max(stats.batches, 1), 1)}
            yield r


def _redis_py(plan: Plan) -> dict:
    label = "redis-py INCR"
    try:
        import redis
    except ImportError:
        return {"case": "redis", "label": label, "skipped": "redis-py not installed"}
    if not redis_installed():
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
    return out


def run(dsn: str, conn: psycopg.Connection, plan: Plan) -> Iterator[dict]:
    """Each case in turn, redis-py last."""
    yield from _tally(dsn, conn, plan)
    yield _redis_py(plan)


def summary(plan: Plan, cases: list[dict]) -> dict:
    tps = {c["case"]: c.get("tps") for c in cases}
    return {
        "threads": plan.client_threads,
        "seconds": plan.client_seconds,
        "cases": cases,
        "ratios": {
            "coalesced_vs_plain": ratio(tps.get("coalesced"), tps.get("plain")),
            "coalesced_vs_redis": ratio(tps.get("coalesced"), tps.get("redis")),
            "coalesced_keys_vs_plain": ratio(tps.get("coalesced_keys"), tps.get("plain")),
        },
    }
