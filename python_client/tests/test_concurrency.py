"""Exactness under concurrency: 16 writers and 3 compactors at once, every
value compared with a ground truth the test keeps."""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import UTC, datetime, timedelta

import psycopg
import workers
from truth import Truth, assert_matches

WRITERS = 16
COMPACTORS = 3
DAYS_BACK = 400


def test_sixteen_writers_three_compactors_exact(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('views_fast')")
    conn.execute("SELECT tally.create_counter('follows_durable', p_durable => true)")
    counters = ["views_fast", "follows_durable"]
    deadlocks_before = workers.deadlocks(conn)

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    stop = ctx.Event()
    compactors = [ctx.Process(target=workers.compactor, args=(dsn, i, stop, out)) for i in range(COMPACTORS)]
    writers = [
        ctx.Process(target=workers.writer, args=(dsn, seed, counters, 400, DAYS_BACK, out)) for seed in range(WRITERS)
    ]
    for p in compactors + writers:
        p.start()

    truth = Truth()
    results = []
    deadline = time.monotonic() + 600
    while len(results) < WRITERS:
        kind, ident, calls, errors, plain = out.get(timeout=max(1, deadline - time.monotonic()))
        assert kind == "writer", f"compactor {ident} stopped early: {errors}"
        results.append((ident, calls, errors))
        truth.merge(Truth.from_plain(plain))
    # The compactors were folding the whole time; let them run a little more.
    time.sleep(1)
    stop.set()
    compactor_results = [out.get(timeout=120) for _ in range(COMPACTORS)]
    for p in compactors + writers:
        p.join(timeout=60)

    writer_errors = [e for _, _, errs in results for e in errs]
    assert not writer_errors, "writers saw errors:\n" + "\n".join(writer_errors[:3])
    compactor_errors = [e for *_, errs, _ in compactor_results for e in errs]
    assert not compactor_errors, "compactors saw errors:\n" + "\n".join(compactor_errors[:3])
    assert all(calls > 0 for _, _, calls, _, _ in compactor_results), compactor_results

    folds_during_load = conn.execute("SELECT count(*) FROM tally.fold_runs WHERE outcome = 'ok'").fetchone()[0]
    assert folds_during_load >= 3, "the compactors folded (almost) nothing while the writers ran"

    conn.execute("CALL tally.compact()")
    assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0

    start = datetime.now(UTC) - timedelta(days=DAYS_BACK + 40)
    end = datetime.now(UTC) + timedelta(days=1)
    compared = assert_matches(conn, truth, start, end)
    assert truth.increments > 30_000
    assert compared > truth.increments  # every total plus every bucket at 5 granularities

    assert workers.deadlocks(conn) == deadlocks_before
    failed = conn.execute("SELECT count(*) FROM tally.fold_runs WHERE outcome <> 'ok'").fetchone()[0]
    assert failed == 0
