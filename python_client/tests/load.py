"""The concurrency harness the exactness tests share: many writer processes
keeping a ground truth and compactor processes folding beside them
(workers.py), then every value compared with the truth."""

from __future__ import annotations

import multiprocessing as mp
import random
import threading
import time
from collections import Counter
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
    writer_dsns: list[str] | None = None,
) -> tuple[Truth, list]:
    """Start writers and compactors (with slices > 1, compactor i folds slice
    i % slices), run `during()` (if given) in this process while they work,
    and return the merged truth and the compactor results. Writer i connects
    to writer_dsns[i % len] (default: dsn, where the compactors connect)."""
    spread = writer_dsns or [dsn]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    stop = ctx.Event()
    procs = [
        ctx.Process(target=workers.compactor, args=(dsn, i, stop, out, max_deltas, reconnect, slices))
        for i in range(compactors)
    ]
    procs += [
        ctx.Process(target=writer_fn, args=(spread[seed % len(spread)], seed, counters, iterations, days_back, out))
        for seed in range(writers)
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


def race_writer(dsn: str, seed: int, stop: threading.Event, errors: Counter, applied: Counter, bad: list[str]) -> None:
    """A writer racing a drop and create of counter 'rv' (and 'stable' beside
    it): single increments, with event ids, batches, batches with event ids.
    Counts what was applied, and the refusals that are tally's own unknown
    counter (42704 naming the function, with a hint); anything else goes to
    `bad`."""
    rnd = random.Random(seed)
    n = 0
    with psycopg.connect(dsn, autocommit=True) as c:
        while not stop.is_set():
            n += 1
            kind = rnd.choice(["single", "event", "batch", "batch_event"])
            try:
                if kind == "single":
                    c.execute("SELECT tally.increment_counter('rv', %s::text)", (str(rnd.randint(1, 5)),))
                elif kind == "event":
                    c.execute(
                        "SELECT tally.increment_counter('rv', %s::text, 1, now(), %s::text)",
                        (str(rnd.randint(1, 5)), f"{seed}-{n}"),
                    )
                elif kind == "batch":
                    (k,) = c.execute(
                        "SELECT tally.increment_counters(ARRAY['rv', 'stable', 'rv'], ARRAY['a', 'b', 'c'],"
                        " ARRAY[1, 1, 1]::bigint[])"
                    ).fetchone()
                    assert k == 3, k
                else:
                    (k,) = c.execute(
                        "SELECT tally.increment_counters(ARRAY['stable', 'rv'], ARRAY['a', 'b'], ARRAY[1, 1]::bigint[],"
                        " NULL, ARRAY[%s, %s])",
                        (f"s-{seed}-{n}", f"r-{seed}-{n}"),
                    ).fetchone()
                    assert k == 2, k
                applied[kind] += 1
            except psycopg.Error as exc:
                message = exc.diag.message_primary or ""
                if (
                    exc.sqlstate == "42704"
                    and message.startswith("tally.increment_counter")
                    and '"rv"' in message
                    and exc.diag.message_hint
                ):
                    errors[kind] += 1
                else:
                    bad.append(f"{kind}: {exc.sqlstate}: {message}")
