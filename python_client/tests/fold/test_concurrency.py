"""Exactness under concurrency: 16 writers and several compactors at once,
every value compared with a ground truth the test keeps."""

from __future__ import annotations

import psycopg
import pytest
import workers
from load import check_exact, keep_everything, run_load


@pytest.mark.parametrize(
    ("compactors", "max_deltas"),
    [pytest.param(3, 20_000, id="3-compactors"), pytest.param(4, 500, id="4-small-fold-loops")],
)
def test_sixteen_writers_race_compactors_exact(
    dsn: str, conn: psycopg.Connection, compactors: int, max_deltas: int
) -> None:
    conn.execute("SELECT tally.create_counter('views_fast')")
    conn.execute("SELECT tally.create_counter('follows_durable', p_durable => true)")
    counters = ["views_fast", "follows_durable"]
    keep_everything(conn, counters)
    deadlocks_before = workers.deadlocks(conn)

    truth, compactor_results = run_load(dsn, counters, compactors=compactors, max_deltas=max_deltas)

    assert all(calls > 0 for _, _, calls, _, _ in compactor_results), compactor_results
    folds = conn.execute("SELECT count(*) FROM tally.fold_runs WHERE outcome = 'ok'").fetchone()[0]
    assert folds >= 3, "the compactors folded (almost) nothing while the writers ran"

    compared = check_exact(conn, truth)
    assert truth.increments > 30_000
    assert compared > truth.increments  # every total plus every bucket at 5 granularities

    assert workers.deadlocks(conn) == deadlocks_before
    failed = conn.execute("SELECT count(*) FROM tally.fold_runs WHERE outcome <> 'ok'").fetchone()[0]
    assert failed == 0
