"""The counters a case makes and drops, the increments it loads, the folds
it waits for and the totals it checks."""

from __future__ import annotations

import random
import time
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import psycopg
from tally.progress import Progress


def drop_counter(conn: psycopg.Connection, name: str) -> None:
    """tally.drop_counter; on Citus over one connection per worker (it deletes
    from distributed tables, then from the reference table counters)."""
    with conn.transaction():
        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone():
            conn.execute("SET LOCAL citus.multi_shard_modify_mode = 'sequential'")
        conn.execute("SELECT tally.drop_counter(%s::text)", (name,))


def fresh_counter(conn: psycopg.Connection, name: str, durable: bool = False) -> int:
    """A new, empty counter ``name`` (one left by an earlier run is dropped first); its id."""
    if conn.execute("SELECT 1 FROM tally.counters WHERE name = %s", (name,)).fetchone():
        drop_counter(conn, name)
    conn.execute("SELECT tally.create_counter(%s, p_durable => %s)", (name, durable))
    return conn.execute("SELECT id FROM tally.counters WHERE name = %s", (name,)).fetchone()[0]


def counter_total(conn: psycopg.Connection, name: str) -> int:
    """The sum of the counter's folded totals (what is pending is not in it)."""
    return int(
        conn.execute(
            "SELECT coalesce(sum(t.value), 0) FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id"
            " WHERE c.name = %s",
            (name,),
        ).fetchone()[0]
    )


def pending(conn: psycopg.Connection) -> int:
    """Deltas not folded yet (tally.compactor_lag)."""
    return int(conn.execute("SELECT coalesce(sum(pending_deltas), 0) FROM tally.compactor_lag").fetchone()[0])


def fold_all(conn: psycopg.Connection, label: str) -> float:
    """CALL tally.compact() until tally.compactor_lag shows nothing pending; returns seconds."""
    total = pending(conn)
    t0 = time.monotonic()
    with Progress(total, label, unit="deltas") as bar:
        while True:
            conn.execute("CALL tally.compact()")
            left = pending(conn)
            bar.update(total - left)
            if left == 0:
                break
    return time.monotonic() - t0


def load(conn: psycopg.Connection, counter: str, n: int, keys: int, spread: str, label: str | None = None) -> float:
    """n increments of 1 over ``keys`` keys (one key: 'hot'), timestamps over
    the last ``spread``, through increment_counters (100,000 per call, arrays
    built in the server), with a progress bar if ``label``; returns seconds."""
    step = 100_000
    t0 = time.monotonic()
    with Progress(n, label, unit="increments") if label else nullcontext() as bar:
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
            if bar is not None:
                bar.update(done)
    return time.monotonic() - t0


def load_seeded(
    dsn: str, counter: str, n: int, spread: timedelta, keys: int = 1_000, seed: int = 1, per_call: int = 10_000
) -> float:
    """n increments of 1 over ``keys`` keys, timestamps over the last
    ``spread``, drawn from ``random.Random(seed)`` (the same seed, the same
    keys and times) and sent through increment_counters ``per_call`` at a
    time; returns increments/s."""
    rnd = random.Random(seed)
    now = datetime.now(UTC)
    t0 = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        done = 0
        while done < n:
            k = min(per_call, n - done)
            conn.execute(
                "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
                (
                    [counter] * k,
                    [str(rnd.randint(1, keys)) for _ in range(k)],
                    [1] * k,
                    [now - spread * rnd.random() for _ in range(k)],
                ),
            )
            done += k
    return n / (time.monotonic() - t0)
