"""The concurrency harness the exactness tests share: many writer processes
keeping a ground truth and compactor processes folding beside them
(workers.py), then every value compared with the truth."""

from __future__ import annotations

import multiprocessing as mp
import time
from datetime import UTC, datetime, timedelta

import psycopg
import workers
from truth import Truth, assert_matches

WRITERS = 16
DAYS_BACK = 400


def run_load(
    dsn: str,
    counters: list[str],
    *,
    writers: int = WRITERS,
    iterations: int = 400,
    compactors: int = 3,
    max_deltas: int = 20_000,
    days_back: float = DAYS_BACK,
    writer_fn=workers.writer,
    reconnect: bool = False,
    during=None,
    slices: int = 1,
) -> tuple[Truth, list]:
    """Start writers and compactors (with slices > 1, compactor i folds slice
    i % slices), run `during()` (if given) in this process while they work,
    and return the merged truth and the compactor results."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    stop = ctx.Event()
    procs = [
        ctx.Process(target=workers.compactor, args=(dsn, i, stop, out, max_deltas, reconnect, slices))
        for i in range(compactors)
    ]
    procs += [
        ctx.Process(target=writer_fn, args=(dsn, seed, counters, iterations, days_back, out)) for seed in range(writers)
    ]
    for p in procs:
        p.start()
    if during is not None:
        during()
    truth = Truth()
    results = []
    deadline = time.monotonic() + 900
    while len(results) < writers:
        kind, ident, calls, errors, plain = out.get(timeout=max(1, deadline - time.monotonic()))
        assert kind == "writer", f"compactor {ident} stopped early: {errors}"
        assert not errors, f"writer {ident} saw errors:\n" + "\n".join(errors)
        results.append((ident, calls))
        truth.merge(Truth.from_plain(plain))
    time.sleep(0.5)
    stop.set()
    compactor_results = [out.get(timeout=120) for _ in range(compactors)]
    for p in procs:
        p.join(timeout=60)
    for _, ident, _, errors, _ in compactor_results:
        assert not errors, f"compactor {ident} saw errors:\n" + "\n".join(errors)
    return truth, compactor_results


def check_exact(conn: psycopg.Connection, truth: Truth, days_back: float = DAYS_BACK) -> int:
    conn.execute("CALL tally.compact()")
    assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0
    start = datetime.now(UTC) - timedelta(days=days_back + 40)
    end = datetime.now(UTC) + timedelta(days=1)
    return assert_matches(conn, truth, start, end)


def keep_everything(conn: psycopg.Connection, counters: list[str]) -> None:
    """Keep every bucket forever, so the truth needs no retention rule."""
    for c in counters:
        for g in ("minute", "hour"):
            conn.execute("SELECT tally.set_retention(%s, %s, NULL)", (c, g))
