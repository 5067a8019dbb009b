"""Parallel folds: several compactors fold disjoint key slices at once
(CALL tally.compact(p_slice => k, p_slices => n)), beside a plain
CALL tally.compact() looping at the same time, while writers send single and
batch increments, positive and negative, on a hot key and 1,000 others,
fast and durable, with timestamps over 400 days. Every total and bucket is
compared with the ground truth; no deadlock, no failed fold; the slices
really folded at the same time. Then the same with the slice compactors'
backends terminated mid-fold, again and again."""

from __future__ import annotations

import threading
import time
import traceback

import psycopg
import pytest
import workers
from load import check_exact, keep_everything, run_load


class SliceCompactor(threading.Thread):
    """Loops CALL tally.compact(max_deltas, 5, slice, slices) until stopped.
    With reconnect, a connection the test killed itself is counted and
    survived; any other error (a deadlock, a timeout) is recorded and stops
    it."""

    def __init__(self, dsn: str, slice_: int, slices: int, stop: threading.Event, *, reconnect: bool = False):
        super().__init__(daemon=True)
        self.dsn, self.slice, self.slices, self.stop, self.reconnect = dsn, slice_, slices, stop, reconnect
        self.name_ = f"tally test slice {slice_} of {slices}"
        self.calls = 0
        self.lost = 0
        self.errors: list[str] = []

    def _connect(self) -> psycopg.Connection:
        conn = workers.connect_retry(self.dsn, time.monotonic() + 120)
        conn.execute("SELECT set_config('application_name', %s, false)", (self.name_,))
        return conn

    def run(self) -> None:
        conn = self._connect()
        try:
            while not self.stop.is_set():
                try:
                    conn.execute(
                        "CALL tally.compact(%s::integer, 5, %s::integer, %s::integer)", (2_000, self.slice, self.slices)
                    )
                    self.calls += 1
                    time.sleep(0.02)
                except psycopg.OperationalError as exc:
                    if not self.reconnect or not workers.killed(exc, conn):
                        raise workers.unexpected(exc) from exc
                    self.lost += 1
                    conn.close()
                    conn = self._connect()
        except Exception:
            self.errors.append(traceback.format_exc())
        finally:
            conn.close()


def overlapping_slice_folds(conn: psycopg.Connection) -> int:
    """Pairs of folds of different slices whose work overlapped in time (a
    slice fold's started_at is taken once it holds its locks)."""
    return conn.execute(
        "SELECT count(*) FROM tally.fold_runs AS a JOIN tally.fold_runs AS b"
        " ON a.id < b.id AND a.slice <> b.slice AND a.slices = b.slices"
        " AND a.started_at < b.finished_at AND b.started_at < a.finished_at"
        " WHERE a.mode = 'delete' AND b.mode = 'delete' AND a.deltas > 0 AND b.deltas > 0"
    ).fetchone()[0]


def run_with_slices(dsn: str, conn: psycopg.Connection, slices: int, *, kill: bool = False) -> tuple:
    conn.execute("SELECT tally.create_counter('views_fast')")
    conn.execute("SELECT tally.create_counter('follows_durable', p_durable => true)")
    counters = ["views_fast", "follows_durable"]
    keep_everything(conn, counters)
    deadlocks_before = workers.deadlocks(conn)

    stop = threading.Event()
    slicers = [SliceCompactor(dsn, k, slices, stop, reconnect=kill) for k in range(slices)]
    for s in slicers:
        s.start()
    kills = []

    def killer() -> None:
        # Terminate a slice compactor mid-fold (it holds its slice's bucket
        # locks: it is inside a slice step's transaction), at most every
        # 0.3 s, until the writers are done; looked for every 20 ms (a step
        # is short: a slower look misses most of them).
        with psycopg.connect(dsn, autocommit=True) as k:
            while not stop.is_set():
                row = k.execute(
                    "SELECT a.pid, a.application_name FROM pg_stat_activity AS a"
                    " WHERE a.datname = current_database() AND a.application_name LIKE 'tally test slice %%'"
                    " AND EXISTS (SELECT FROM pg_locks AS l WHERE l.pid = a.pid AND l.locktype = 'advisory'"
                    "             AND l.classid = 736175647 AND l.objsubid = 2 AND l.granted)"
                    " ORDER BY random() LIMIT 1"
                ).fetchone()
                if row and k.execute("SELECT pg_terminate_backend(%s)", (row[0],)).fetchone()[0]:
                    kills.append(row[1])
                    time.sleep(0.3)
                else:
                    time.sleep(0.02)

    killer_thread = threading.Thread(target=killer, daemon=True)
    if kill:
        killer_thread.start()
    try:
        # 8 writers (processes) and one plain CALL tally.compact() looping.
        # With kills, the writers write three times as long (about 10 s
        # here): at most one kill per 0.3 s, and a slower box must still see
        # several kills while there is work to fold.
        iterations = 600 if kill else 200
        truth, plain = run_load(dsn, counters, writers=8, iterations=iterations, compactors=1, max_deltas=5_000)
    finally:
        stop.set()
        for s in slicers:
            s.join(timeout=120)
        if kill:
            killer_thread.join(timeout=30)
    for s in slicers:
        assert not s.is_alive(), f"{s.name_} did not stop"
        assert not s.errors, f"{s.name_} saw errors:\n" + "\n".join(s.errors)
    assert plain[0][2] > 0, "the plain compactor never completed a CALL"

    compared = check_exact(conn, truth)
    assert truth.increments > 10_000
    assert compared > truth.increments  # every total plus every bucket at 5 granularities
    assert workers.deadlocks(conn) == deadlocks_before
    failed = conn.execute("SELECT count(*), min(error) FROM tally.fold_runs WHERE outcome <> 'ok'").fetchone()
    assert failed[0] == 0, failed
    per_slice = dict(
        conn.execute(
            "SELECT slice, sum(deltas) FROM tally.fold_runs WHERE slices = %s AND mode = 'delete' GROUP BY slice",
            (slices,),
        ).fetchall()
    )
    assert sorted(per_slice) == list(range(slices)), per_slice
    assert all(n > 0 for n in per_slice.values()), per_slice
    return slicers, kills


@pytest.mark.parametrize("slices", [2, 4])
def test_parallel_slices_beside_a_plain_compactor_exact(dsn: str, conn: psycopg.Connection, slices: int) -> None:
    run_with_slices(dsn, conn, slices)
    overlaps = overlapping_slice_folds(conn)
    assert overlaps > 0, "no two slice folds ever ran at the same time"
    print(f"\n  {slices} slices: {overlaps} pairs of slice folds overlapped in time")


def test_slice_compactors_terminated_mid_fold_exact(dsn: str, conn: psycopg.Connection) -> None:
    slicers, kills = run_with_slices(dsn, conn, 3, kill=True)
    assert len(kills) >= 5, f"only {len(kills)} slice compactors were terminated"
    # Each kill costs its compactor its connection, unless the compactor was
    # told to stop before it noticed (the last kills).
    assert 0 < sum(s.lost for s in slicers) <= len(kills)
    # What the killed ones had not folded was folded by the others or later:
    # check_exact (in run_with_slices) found every value exact.
    print(f"\n  {len(kills)} slice compactors terminated mid-fold; values exact")
