"""Processes of the soak test (test_soak.py): legitimate writers that keep a
ground truth, and a hostile writer that sends deltas whose folds would
overflow bigint. Spawned, so each opens its own connection; each runs until
its deadline and reports what it sent. Any error fails the test: these
workers never reconnect or retry."""

from __future__ import annotations

import random
import time
import traceback
from datetime import UTC, datetime, timedelta

import psycopg
from truth import Truth

BIGINT_MAX = 9223372036854775807
BIGINT_MIN = -9223372036854775808
HOSTILE_COUNTER = "soak_hostile"
HOSTILE_GRANULARITIES = ("minute", "day")


def _pick(rnd: random.Random, counters: list[str], days_back: float) -> tuple[str, str, int, datetime]:
    key = "hot" if rnd.random() < 0.3 else str(rnd.randint(1, 1000))
    delta = rnd.choice([1, 1, 1, 2, 5, -1, -3])
    at = datetime.now(UTC) - timedelta(seconds=rnd.uniform(0, days_back * 86400))
    return rnd.choice(counters), key, delta, at


def legit_writer(dsn: str, seed: int, counters: list[str], seconds: float, days_back: float, rate: float, out) -> None:
    """Singles (65%), batches of 1-60 (25%), and increments with an event id
    (10%; half of them replays of an id applied before, which must change
    nothing), at most `rate` calls a second (a soak, not a flood: the
    compactor must keep up on a shared 2-core machine). An increment enters
    the truth once its call returned."""
    rnd = random.Random(seed)
    truth = Truth()
    errors: list[str] = []
    calls = 0
    applied_ids: list[tuple[str, str]] = []
    deadline = time.monotonic() + seconds
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            started = time.monotonic()
            while time.monotonic() < deadline:
                ahead = started + calls / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                r = rnd.random()
                if r < 0.65:
                    counter, key, delta, at = _pick(rnd, counters, days_back)
                    ok = conn.execute(
                        "SELECT tally.increment_counter(%s::text, %s::text, %s::bigint, %s::timestamptz)",
                        (counter, key, delta, at),
                    ).fetchone()[0]
                    assert ok is True
                    truth.add(counter, key, delta, at)
                elif r < 0.9:
                    batch = [_pick(rnd, counters, days_back) for _ in range(rnd.randint(1, 60))]
                    n = conn.execute(
                        "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
                        tuple(list(col) for col in zip(*batch, strict=True)),
                    ).fetchone()[0]
                    assert n == len(batch), (n, len(batch))
                    for inc in batch:
                        truth.add(*inc)
                elif applied_ids and rnd.random() < 0.5:
                    counter, event = rnd.choice(applied_ids)
                    ok = conn.execute(
                        "SELECT tally.increment_counter(%s::text, 'replayed', 1, now(), %s::text)", (counter, event)
                    ).fetchone()[0]
                    assert ok is False, f"a replay of {event!r} on {counter!r} was applied"
                else:
                    counter = rnd.choice(counters)
                    event = f"soak-{seed}-{calls}"
                    at = datetime.now(UTC)
                    ok = conn.execute(
                        "SELECT tally.increment_counter(%s::text, 'with-id', 1, %s::timestamptz, %s::text)",
                        (counter, at, event),
                    ).fetchone()[0]
                    assert ok is True
                    truth.add(counter, "with-id", 1, at)
                    applied_ids.append((counter, event))
                calls += 1
    except Exception:
        errors.append(traceback.format_exc())
    out.put(("legit", seed, calls, errors, truth.to_plain()))


def hostile_writer(dsn: str, seed: int, seconds: float, chunk: int, out) -> None:
    """Deltas that overflow bigint when folded, sent where they hurt most:
    bulk batches (their own shard) with bigint-extreme deltas of a poison key
    on both sides of a fold chunk boundary (element `chunk`), filler keys of
    the same counter around them; and bigint-extreme singles of one key from
    three connections, so three per-worker shards hold them. Reports what it
    sent per poison key (sum, count) and the filler as a truth."""
    rnd = random.Random(seed)
    filler = Truth()
    sent: dict[str, list[int]] = {}
    errors: list[str] = []
    calls = 0
    deadline = time.monotonic() + seconds
    conns: list[psycopg.Connection] = []
    try:
        # three sessions whose backends write to three different shards
        while len({c.info.backend_pid % 3 for c in conns}) < 3:
            c = psycopg.connect(dsn, autocommit=True)
            if c.info.backend_pid % 3 in {x.info.backend_pid % 3 for x in conns}:
                c.close()
            else:
                conns.append(c)
        while time.monotonic() < deadline:
            poison = f"p{seed}-{calls}"
            sign = rnd.choice([1, -1])
            extreme = BIGINT_MAX if sign > 0 else BIGINT_MIN
            if calls % 2 == 0:
                n = chunk + rnd.randint(2, 50)
                at = datetime.now(UTC)
                keys = [f"f{i % 13}" for i in range(n)]
                deltas = [1] * n
                for i in (chunk - 2, chunk - 1, chunk, chunk + 1):  # around the chunk boundary
                    keys[i] = poison
                    deltas[i] = extreme
                done = (
                    conns[0]
                    .execute(
                        "SELECT tally.increment_counters(array_fill(%s::text, ARRAY[%s]), %s::text[], %s::bigint[],"
                        " array_fill(%s::timestamptz, ARRAY[%s]))",
                        (HOSTILE_COUNTER, n, keys, deltas, at, n),
                    )
                    .fetchone()[0]
                )
                assert done == n
                for k, d in zip(keys, deltas, strict=True):
                    if k == poison:
                        sent.setdefault(poison, [0, 0])
                        sent[poison][0] += d
                        sent[poison][1] += 1
                    else:
                        filler.add(HOSTILE_COUNTER, k, d, at, HOSTILE_GRANULARITIES)
            else:
                for c in conns:
                    for _ in range(2):
                        assert c.execute(
                            "SELECT tally.increment_counter(%s::text, %s::text, %s::bigint)",
                            (HOSTILE_COUNTER, poison, extreme),
                        ).fetchone()[0]
                        sent.setdefault(poison, [0, 0])
                        sent[poison][0] += extreme
                        sent[poison][1] += 1
            calls += 1
            time.sleep(rnd.uniform(1.0, 3.0))
    except Exception:
        errors.append(traceback.format_exc())
    finally:
        for c in conns:
            c.close()
    out.put(("hostile", seed, calls, errors, (sent, filler.to_plain())))
