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


# What a connection the test killed itself reports: the backend was
# terminated (pg_terminate_backend, a fast shutdown: admin_shutdown), the
# server crashed or is going down (crash_shutdown), or is starting up again
# (cannot_connect_now); class 08 is a connection failure. A killed backend
# may also vanish without a word (SIGKILL): no SQLSTATE at all.
KILLED = {"57P01", "57P02", "57P03"}


def killed(exc: BaseException, conn: psycopg.Connection | None) -> bool:
    """True only when `exc` is the loss of `conn` itself (None: a connection
    attempt). Everything else psycopg also calls OperationalError — deadlock
    40P01, serialization failure 40001, lock timeout 55P03, statement timeout
    or cancel 57014 — is not: the connection is alive, and the test fails."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    if state is not None and state not in KILLED and not state.startswith("08"):
        return False
    return conn is None or conn.closed or conn.broken


def unexpected(exc: BaseException) -> AssertionError:
    """The error a worker fails with when `exc` is not a kill it may retry."""
    return AssertionError(f"not a killed connection, SQLSTATE {getattr(exc, 'sqlstate', None)}: {exc!r}")


def connect_retry(dsn: str, deadline: float) -> psycopg.Connection:
    """Connect, retrying while the server is down or starting up (until
    `deadline`); any other connection error fails at once."""
    while True:
        try:
            return psycopg.connect(dsn, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            if not killed(exc, None):
                raise unexpected(exc) from exc
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
    conn = connect_retry(dsn, deadline)
    try:
        for seq in range(iterations):
            applied = None
            try:
                with conn.transaction():
                    applied = _apply(conn, rnd, counters, days_back)
                    conn.execute("INSERT INTO acks (writer, seq) VALUES (%s, %s)", (seed, seq))
            except psycopg.OperationalError as exc:
                if not killed(exc, conn):
                    raise unexpected(exc) from exc
                lost_connections += 1
                conn.close()
                conn = connect_retry(dsn, deadline)
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


def compactor(
    dsn: str, ident: int, stop, out, max_deltas: int = 20_000, reconnect: bool = False, slices: int = 1
) -> None:
    """Loop CALL tally.compact() until told to stop (with slices > 1: of
    slice ident % slices, beside the other slices' compactors). With
    reconnect, a connection the test killed (terminated backend, restart) is
    counted and survived; any other error (a deadlock, a timeout) stops it
    with an error."""
    errors: list[str] = []
    calls = 0
    lost = 0
    deadline = time.monotonic() + 600
    conn = connect_retry(dsn, deadline)
    name = f"tally test compactor {ident}"
    try:
        conn.execute("SELECT set_config('application_name', %s, false)", (name,))
        while not stop.is_set():
            try:
                conn.execute(
                    "CALL tally.compact(%s::integer, 5, %s::integer, %s::integer)", (max_deltas, ident % slices, slices)
                )
                calls += 1
                time.sleep(0.02)
            except psycopg.OperationalError as exc:
                if not reconnect or not killed(exc, conn):
                    raise unexpected(exc) from exc
                lost += 1
                conn.close()
                conn = connect_retry(dsn, deadline)
                conn.execute("SELECT set_config('application_name', %s, false)", (name,))
    except Exception:
        errors.append(traceback.format_exc())
    finally:
        conn.close()
    out.put(("compactor", ident, calls, errors, lost))


def deadlocks(conn: psycopg.Connection, timeout: float = 30.0) -> int:
    """pg_stat_database.deadlocks of this database, read only once every
    count is in: a backend keeps its statistics to itself until it flushes
    them, at most once a second while idle and always at exit. So flush this
    session's own, wait (up to `timeout` s) until every other client backend
    of the database has ended or been idle for 2 s, then drop this session's
    statistics snapshot and read. `conn` must be in autocommit mode."""
    conn.execute("SELECT pg_stat_force_next_flush()")
    deadline = time.monotonic() + timeout
    while True:
        busy = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            " AND (state IS DISTINCT FROM 'idle' OR clock_timestamp() - state_change < interval '2 s')"
        ).fetchone()[0]
        if busy == 0:
            break
        assert time.monotonic() < deadline, f"{busy} sessions still busy: deadlock counts not flushed"
        time.sleep(0.1)
    conn.execute("SELECT pg_stat_clear_snapshot()")
    (n,) = conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return int(n)
