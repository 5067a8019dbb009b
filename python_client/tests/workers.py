"""Processes the concurrency tests start: writers that keep a ground truth,
and compactors that loop CALL tally.compact(). Spawned, so each opens its
own connection."""

from __future__ import annotations

import random
import time
import traceback
from datetime import UTC, datetime, timedelta

import psycopg
from truth import Truth

HOT_KEY = "hot"


def writer(dsn: str, seed: int, counters: list[str], iterations: int, days_back: int, out) -> None:
    """Single and batch increments, positive and negative, one hot key plus
    1,000 others, timestamps spread over the last `days_back` days. Every call
    autocommits; an increment enters the truth only once its call returned."""
    rnd = random.Random(seed)
    truth = Truth()
    errors: list[str] = []
    calls = 0

    def pick() -> tuple[str, str, int, datetime]:
        key = HOT_KEY if rnd.random() < 0.3 else str(rnd.randint(1, 1000))
        delta = rnd.choice([1, 1, 1, 2, 5, -1, -3])
        at = datetime.now(UTC) - timedelta(seconds=rnd.uniform(0, days_back * 86400))
        return rnd.choice(counters), key, delta, at

    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for _ in range(iterations):
                if rnd.random() < 0.7:
                    counter, key, delta, at = pick()
                    (ok,) = conn.execute(
                        "SELECT tally.increment_counter(%s::text, %s::text, %s::bigint, %s::timestamptz)",
                        (counter, key, delta, at),
                    ).fetchone()
                    assert ok is True
                    truth.add(counter, key, delta, at)
                else:
                    batch = [pick() for _ in range(rnd.randint(1, 60))]
                    (n,) = conn.execute(
                        "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
                        tuple(list(col) for col in zip(*batch, strict=True)),
                    ).fetchone()
                    assert n == len(batch), (n, len(batch))
                    for counter, key, delta, at in batch:
                        truth.add(counter, key, delta, at)
                calls += 1
    except Exception:
        errors.append(traceback.format_exc())
    out.put(("writer", seed, calls, errors, truth.to_plain()))


def compactor(dsn: str, ident: int, stop, out, max_deltas: int = 20_000) -> None:
    """Loop CALL tally.compact() until told to stop."""
    errors: list[str] = []
    calls = 0
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT set_config('application_name', %s, false)", (f"tally test compactor {ident}",))
            while not stop.is_set():
                conn.execute("CALL tally.compact(%s::integer)", (max_deltas,))
                calls += 1
                time.sleep(0.05)
    except Exception:
        errors.append(traceback.format_exc())
    out.put(("compactor", ident, calls, errors, None))


def deadlocks(conn) -> int:
    (n,) = conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return int(n)


def gran_of(conn) -> dict[str, tuple[str, ...]]:
    return {name: tuple(g) for name, g in conn.execute("SELECT name, granularities FROM tally.counters")}
