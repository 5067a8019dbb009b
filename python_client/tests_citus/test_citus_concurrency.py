"""The core concurrency test against the Citus coordinator: writers single
and batch, positive and negative, a hot key plus 1,000 others, timestamps
over 400 days, fast and durable counters, two compactors; every total and
every bucket compared with the ground truth the test keeps."""

from __future__ import annotations

import time

import psycopg
from test_concurrency import check_exact, keep_everything, run_load


def deadlocks(conn: psycopg.Connection) -> int:
    """Deadlocks detected on every node (pg_stat_database), once the
    sessions that ran the load have flushed their statistics (an idle
    backend flushes within a second)."""
    time.sleep(2.5)
    return conn.execute(
        "SELECT sum(r.result::bigint) FROM run_command_on_all_nodes("
        "$$SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()$$) AS r"
    ).fetchone()[0]


def test_writers_race_compactors_on_citus_exact(citus_dsn: str, cconn: psycopg.Connection, name: str) -> None:
    counters = [f"{name}_fast", f"{name}_durable"]
    cconn.execute("SELECT tally.create_counter(%s)", (counters[0],))
    cconn.execute("SELECT tally.create_counter(%s, p_durable => true)", (counters[1],))
    keep_everything(cconn, counters)
    runs_before = cconn.execute("SELECT coalesce(max(id), 0) FROM tally.fold_runs").fetchone()[0]
    deadlocks_before = deadlocks(cconn)

    truth, compactor_results = run_load(citus_dsn, counters, writers=8, iterations=250, compactors=2)

    assert all(calls > 0 for _, _, calls, _, _ in compactor_results), compactor_results
    folds = cconn.execute(
        "SELECT count(*) FROM tally.fold_runs WHERE id > %s AND outcome = 'ok' AND deltas > 0", (runs_before,)
    ).fetchone()[0]
    assert folds >= 3, "the compactors folded (almost) nothing while the writers ran"
    compared = check_exact(cconn, truth)
    assert truth.increments > 8_000
    assert compared > truth.increments
    failed = cconn.execute(
        "SELECT count(*) FROM tally.fold_runs WHERE id > %s AND outcome = 'failed'", (runs_before,)
    ).fetchone()[0]
    assert failed == 0
    assert deadlocks(cconn) == deadlocks_before
