"""The core concurrency test on Citus: writers single and batch, positive
and negative, a hot key plus 1,000 others, timestamps over 40 days, fast
and durable counters, spread over every node (the coordinator and each
worker: an increment on its key's node takes the local append, one
elsewhere is delegated there), two compactors; every total and every
bucket compared with the ground truth the test keeps."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import psycopg
from load import check_exact, keep_everything, run_load

DAYS_BACK = 40


def deadlocks(conn: psycopg.Connection) -> int:
    """Deadlocks detected on every node (pg_stat_database), once the
    sessions that ran the load have flushed their statistics (an idle
    backend flushes within a second)."""
    time.sleep(2.5)
    return conn.execute(
        "SELECT sum(r.result::bigint) FROM run_command_on_all_nodes("
        "$$SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()$$) AS r"
    ).fetchone()[0]


def test_writers_race_compactors_on_citus_exact(
    citus_dsn: str, cconn: psycopg.Connection, name: str, node_dsns: list[str]
) -> None:
    counters = [f"{name}_fast", f"{name}_durable"]
    cconn.execute("SELECT tally.create_counter(%s)", (counters[0],))
    cconn.execute("SELECT tally.create_counter(%s, p_durable => true)", (counters[1],))
    keep_everything(cconn, counters)
    # The rollup partitions of the 40 days exist before the load (a warm-up
    # key per day, folded, kept in the truth below): on Citus each new
    # partition is a distributed table made on every worker, seconds each
    # under load, which is maintenance's work, not what this test races.
    warm = datetime.now(UTC)
    cconn.execute(
        "SELECT tally.increment_counters(array_fill(%s::text, ARRAY[42]), array_fill('warm'::text, ARRAY[42]),"
        " array_fill(1::bigint, ARRAY[42]), ARRAY(SELECT %s - g * interval '1 day' FROM generate_series(0, 41) AS g))",
        (counters[0], warm),
    )
    cconn.execute("CALL tally.compact()")
    runs_before = cconn.execute("SELECT coalesce(max(id), 0) FROM tally.fold_runs").fetchone()[0]
    deadlocks_before = deadlocks(cconn)

    # Backfill over 40 days (400 days of minute partitions, each a
    # distributed table on every worker, would make the warm-up the test).
    assert len(node_dsns) == 3
    truth, compactor_results = run_load(
        citus_dsn, counters, writers=9, iterations=540, compactors=2, days_back=DAYS_BACK, writer_dsns=node_dsns
    )

    assert all(calls > 0 for _, _, calls, _, _ in compactor_results), compactor_results
    folds = cconn.execute(
        "SELECT count(*) FROM tally.fold_runs WHERE id > %s AND outcome = 'ok' AND deltas > 0", (runs_before,)
    ).fetchone()[0]
    assert folds >= 3, "the compactors folded (almost) nothing while the writers ran"
    for g in range(42):
        truth.add(counters[0], "warm", 1, warm - timedelta(days=g))
    compared = check_exact(cconn, truth, days_back=DAYS_BACK)
    assert truth.increments > 20_000
    assert compared > truth.increments
    failed = cconn.execute(
        "SELECT count(*) FROM tally.fold_runs WHERE id > %s AND outcome = 'failed'", (runs_before,)
    ).fetchone()[0]
    assert failed == 0
    assert deadlocks(cconn) == deadlocks_before


def test_compact_returns_while_writers_keep_writing(citus_dsn: str, cconn: psycopg.Connection, name: str) -> None:
    """A compact() call ends once what was committed before it is folded,
    not when writers pause: on Citus every step drains its own snapshot."""
    import threading

    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        with psycopg.connect(citus_dsn, autocommit=True) as conn:
            n = 0
            while not stop.is_set() and n < 100_000:
                conn.execute(
                    "SELECT tally.increment_counters(array_fill(%s::text, ARRAY[50]),"
                    " ARRAY(SELECT g::text FROM generate_series(1, 50) AS g), array_fill(1::bigint, ARRAY[50]))",
                    (name,),
                )
                n += 50
            written.append(n)

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(2)
        before = cconn.execute("SELECT tally.counter_value(%s, '1')", (name,)).fetchone()[0]
        assert before > 0
        cconn.execute("SET statement_timeout = '60s'")
        started = time.monotonic()
        cconn.execute("CALL tally.compact()")  # 57014 if it waited for the writer to stop
        took = time.monotonic() - started
        assert t.is_alive(), "the writer stopped before compact() returned"
        cconn.execute("RESET statement_timeout")
    finally:
        stop.set()
        t.join(timeout=60)
    assert took < 60
    cconn.execute("CALL tally.compact()")
    assert cconn.execute("SELECT tally.counter_value(%s, '1')", (name,)).fetchone()[0] == written[0] // 50
