"""Processes the concurrency and fault tests start: writers that keep a
ground truth, and compactors that loop CALL tally.compact(). Spawned, so
each opens its own connection."""

from __future__ import annotations

import random
import time
import traceback
from datetime import UTC, datetime, timedelta

import psycopg
from truth import Truth

HOT_KEY = "hot"
FOLD_LOCK_KEY = 7361756479000001


def _pick(rnd: random.Random, counters: list[str], days_back: float) -> tuple[str, str, int, datetime]:
    key = HOT_KEY if rnd.random() < 0.3 else str(rnd.randint(1, 1000))
    delta = rnd.choice([1, 1, 1, 2, 5, -1, -3])
    at = datetime.now(UTC) - timedelta(seconds=rnd.uniform(0, days_back * 86400))
    return rnd.choice(counters), key, delta, at


def _apply(conn: psycopg.Connection, rnd: random.Random, counters: list[str], days_back: float) -> list[tuple]:
    """One call: a single increment (70%) or a batch of 1-60; returns what it applied."""
    if rnd.random() < 0.7:
        counter, key, delta, at = _pick(rnd, counters, days_back)
        (ok,) = conn.execute(
            "SELECT tally.increment_counter(%s::text, %s::text, %s::bigint, %s::timestamptz)",
            (counter, key, delta, at),
        ).fetchone()
        assert ok is True
        return [(counter, key, delta, at)]
    batch = [_pick(rnd, counters, days_back) for _ in range(rnd.randint(1, 60))]
    (n,) = conn.execute(
        "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
        tuple(list(col) for col in zip(*batch, strict=True)),
    ).fetchone()
    assert n == len(batch), (n, len(batch))
    return batch


def writer(dsn: str, seed: int, counters: list[str], iterations: int, days_back: float, out) -> None:
    """Single and batch increments, positive and negative, one hot key plus
    1,000 others, timestamps spread over the last `days_back` days. Every call
    autocommits; an increment enters the truth only once its call returned."""
    rnd = random.Random(seed)
    truth = Truth()
    errors: list[str] = []
    calls = 0
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _ in range(iterations):
                for inc in _apply(conn, rnd, counters, days_back):
                    truth.add(*inc)
                calls += 1
    except Exception:
        errors.append(traceback.format_exc())
    out.put(("writer", seed, calls, errors, truth.to_plain()))


def _connect_retry(dsn: str, deadline: float) -> psycopg.Connection:
    while True:
        try:
            return psycopg.connect(dsn, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def acked_writer(dsn: str, seed: int, counters: list[str], iterations: int, days_back: float, out) -> None:
    """Like writer(), but each call runs in a transaction that also records an
    ack row (writer, seq) in the test's table `acks`. When the connection dies
    mid-call (server restart), the writer reconnects and asks whether its ack
    committed: the truth gets exactly the increments that committed."""
    rnd = random.Random(seed)
    truth = Truth()
    errors: list[str] = []
    lost_connections = 0
    deadline = time.monotonic() + 600
    conn = _connect_retry(dsn, deadline)
    try:
        for seq in range(iterations):
            applied = None
            try:
                with conn.transaction():
                    applied = _apply(conn, rnd, counters, days_back)
                    conn.execute("INSERT INTO acks (writer, seq) VALUES (%s, %s)", (seed, seq))
            except psycopg.OperationalError:
                lost_connections += 1
                conn.close()
                conn = _connect_retry(dsn, deadline)
                committed = conn.execute(
                    "SELECT EXISTS (SELECT FROM acks WHERE writer = %s AND seq = %s)", (seed, seq)
                ).fetchone()[0]
                if not committed:
                    continue
                # The ack is inserted after the increments: it committed, so they did.
                assert applied is not None
            for inc in applied:
                truth.add(*inc)
    except Exception:
        errors.append(traceback.format_exc())
    finally:
        conn.close()
    out.put(("writer", seed, lost_connections, errors, truth.to_plain()))


def compactor(dsn: str, ident: int, stop, out, max_deltas: int = 20_000, reconnect: bool = False) -> None:
    """Loop CALL tally.compact() until told to stop. With reconnect, a lost
    connection (terminated backend, restart) is counted and survived."""
    errors: list[str] = []
    calls = 0
    lost = 0
    deadline = time.monotonic() + 600
    conn = _connect_retry(dsn, deadline)
    name = f"tally test compactor {ident}"
    try:
        conn.execute("SELECT set_config('application_name', %s, false)", (name,))
        while not stop.is_set():
            try:
                conn.execute("CALL tally.compact(%s::integer)", (max_deltas,))
                calls += 1
                time.sleep(0.02)
            except psycopg.OperationalError:
                if not reconnect:
                    raise
                lost += 1
                conn.close()
                conn = _connect_retry(dsn, deadline)
                conn.execute("SELECT set_config('application_name', %s, false)", (name,))
    except Exception:
        errors.append(traceback.format_exc())
    finally:
        conn.close()
    out.put(("compactor", ident, calls, errors, lost))


def deadlocks(conn) -> int:
    (n,) = conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return int(n)
