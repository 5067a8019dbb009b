"""Plain compactors share the work by themselves: every CALL tally.compact()
without a slice takes a seat and folds its share of the keys (the slice of
N its seat's rank gives, N the compactors seated). Three plain compactors
under writers fold in slices at the same time, exactly; terminated mid-fold
again and again, still exactly; one that stops leaves its part to the other
within seconds."""

from __future__ import annotations

import threading
import time

import psycopg
import workers
from load import check_exact, keep_everything, run_load

SEAT_LOCK = 736175648  # plpython/compact.py


def seated(conn: psycopg.Connection) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT l.pid FROM pg_locks AS l WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objsubid = 2"
            " AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " ORDER BY l.objid",
            (SEAT_LOCK,),
        )
    ]


def shared_folds(conn: psycopg.Connection) -> dict[int, int]:
    """Deltas folded by shared steps, per number of compactors sharing."""
    return dict(
        conn.execute(
            "SELECT slices, sum(deltas) FROM tally.fold_runs WHERE slices > 1 AND mode = 'delete' GROUP BY slices"
        ).fetchall()
    )


def overlapping_shared_folds(conn: psycopg.Connection) -> int:
    return conn.execute(
        "SELECT count(*) FROM tally.fold_runs AS a JOIN tally.fold_runs AS b"
        " ON a.id < b.id AND a.slice <> b.slice AND a.slices = b.slices AND a.slices > 1"
        " AND a.started_at < b.finished_at AND b.started_at < a.finished_at"
        " WHERE a.mode = 'delete' AND b.mode = 'delete' AND a.deltas > 0 AND b.deltas > 0"
    ).fetchone()[0]


def setup(conn: psycopg.Connection) -> list[str]:
    conn.execute("SELECT tally.create_counter('views_fast')")
    conn.execute("SELECT tally.create_counter('follows_durable', p_durable => true)")
    counters = ["views_fast", "follows_durable"]
    keep_everything(conn, counters)
    return counters


def test_three_plain_compactors_fold_in_shares_at_once_exact(dsn: str, conn: psycopg.Connection) -> None:
    counters = setup(conn)
    deadlocks_before = workers.deadlocks(conn)
    truth, results = run_load(dsn, counters, writers=8, iterations=200, compactors=3, max_deltas=2_000)
    assert all(calls > 0 for _, _, calls, _, _ in results), results
    compared = check_exact(conn, truth)
    assert truth.increments > 10_000 and compared > truth.increments
    assert workers.deadlocks(conn) == deadlocks_before
    failed = conn.execute("SELECT count(*), min(error) FROM tally.fold_runs WHERE outcome <> 'ok'").fetchone()
    assert failed[0] == 0, failed
    shares = shared_folds(conn)
    assert shares.get(3, 0) > 0, shares  # three seated, each folding a third
    overlaps = overlapping_shared_folds(conn)
    assert overlaps > 0, "no two shared folds ever ran at the same time"
    assert seated(conn) == [], "a seat outlived its call"
    print(f"\n  deltas folded in shares: {shares}; {overlaps} pairs of shared folds overlapped in time")


def test_plain_compactors_terminated_mid_fold_exact(dsn: str, conn: psycopg.Connection) -> None:
    counters = setup(conn)
    stop = threading.Event()
    kills: list[int] = []

    def killer() -> None:
        # Terminate a seated compactor inside a shared fold step (it holds
        # its share's bucket locks), at most every 0.2 s, once a first shared
        # step has finished: on a slow machine kills from the start could cut
        # every shared step short.
        with psycopg.connect(dsn, autocommit=True) as k:
            while not stop.is_set():
                if not kills and not shared_folds(k):
                    time.sleep(0.02)
                    continue
                row = k.execute(
                    "SELECT a.pid FROM pg_stat_activity AS a"
                    " WHERE a.datname = current_database() AND a.application_name LIKE 'tally test compactor %%'"
                    " AND EXISTS (SELECT FROM pg_locks AS l WHERE l.pid = a.pid AND l.locktype = 'advisory'"
                    "             AND l.classid = 736175647 AND l.objsubid = 2 AND l.granted)"
                    " ORDER BY random() LIMIT 1"
                ).fetchone()
                if row and k.execute("SELECT pg_terminate_backend(%s)", (row[0],)).fetchone()[0]:
                    kills.append(row[0])
                    time.sleep(0.2)
                else:
                    time.sleep(0.02)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        truth, results = run_load(
            dsn, counters, writers=8, iterations=1000, compactors=3, max_deltas=2_000, reconnect=True
        )
    finally:
        stop.set()
        t.join(timeout=30)
    assert len(kills) >= 5, f"only {len(kills)} compactors were terminated mid-fold"
    assert 0 < sum(lost for _, _, _, _, lost in results) <= len(kills)
    # what a terminated compactor had not folded was folded by the others or
    # later: every value exact
    compared = check_exact(conn, truth)
    assert truth.increments > 10_000 and compared > truth.increments
    assert shared_folds(conn), "no fold was shared"
    print(f"\n  {len(kills)} plain compactors terminated mid-fold; values exact")


def test_a_compactor_that_stops_leaves_its_part_to_the_other_within_seconds(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('share')")
    loops: list[threading.Thread] = []
    errors: list[BaseException] = []
    pids: dict[str, int] = {}

    def loop(name: str) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True, application_name=name) as c:
                pids[name] = c.info.backend_pid
                c.execute("CALL tally.compact_loop(60, 0.1)")
        except psycopg.OperationalError:
            pass  # the one the test terminates
        except BaseException as exc:
            errors.append(exc)

    def write(tag: str) -> None:
        conn.execute(
            "SELECT tally.increment_counters(array_fill('share'::text, ARRAY[2000]),"
            " ARRAY(SELECT %s || g FROM generate_series(1, 2000) AS g), array_fill(1::bigint, ARRAY[2000]))",
            (tag,),
        )

    def folded_within(seconds: float) -> float:
        start = time.monotonic()
        while conn.execute("SELECT tally._pending()").fetchone()[0] > 0:
            assert time.monotonic() - start < seconds, "the backlog was not folded in time"
            time.sleep(0.05)
        return time.monotonic() - start

    for name in ("share a", "share b"):
        loops.append(threading.Thread(target=loop, args=(name,), daemon=True))
        loops[-1].start()
    try:
        deadline = time.monotonic() + 10
        while len(seated(conn)) < 2:
            assert time.monotonic() < deadline, "the two compactors never both took a seat"
            time.sleep(0.05)
        for i in range(5):
            write(f"a{i}-")
        folded_within(10)
        by_slice = dict(
            conn.execute(
                "SELECT slice, sum(deltas) FROM tally.fold_runs WHERE slices = 2 AND mode = 'delete' GROUP BY slice"
            ).fetchall()
        )
        assert sorted(by_slice) == [0, 1] and all(n > 0 for n in by_slice.values()), by_slice
        last = conn.execute("SELECT max(id) FROM tally.fold_runs").fetchone()[0]
        conn.execute("SELECT pg_terminate_backend(%s)", (pids["share b"],))
        deadline = time.monotonic() + 5
        while len(seated(conn)) > 1:
            assert time.monotonic() < deadline, "the stopped compactor kept its seat"
            time.sleep(0.05)
        for i in range(5):
            write(f"b{i}-")
        took = folded_within(4)  # well under HELP_AFTER + a fold: no waiting for the one gone
        after = conn.execute(
            "SELECT DISTINCT slices FROM tally.fold_runs WHERE id > %s AND mode = 'delete' AND deltas > 0", (last,)
        ).fetchall()
        assert after == [(None,)], after  # the one left folds every key alone (a plain fold)
        assert conn.execute("SELECT sum(value) FROM tally.totals").fetchone()[0] == 20_000
        print(f"\n  after one of two compactors stopped, the other folded 10,000 new deltas in {took:.2f} s")
    finally:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name IN ('share a', 'share b')"
        )
        for t in loops:
            t.join(timeout=30)
    assert not errors, errors


def test_a_seat_kept_by_an_idle_session_does_not_count(dsn: str, conn: psycopg.Connection) -> None:
    """A session that kept a seat past its call (its release failed in an
    aborted transaction) and sits idle is not a compactor: one compactor
    alone still folds every key, plain."""
    conn.execute("SELECT tally.create_counter('stale')")
    with psycopg.connect(dsn, autocommit=True) as idle:
        idle.execute("SELECT pg_advisory_lock(%s, 0)", (SEAT_LOCK,))
        conn.execute(
            "SELECT tally.increment_counters(array_fill('stale'::text, ARRAY[3000]),"
            " ARRAY(SELECT 'k' || g FROM generate_series(1, 3000) AS g), array_fill(1::bigint, ARRAY[3000]))"
        )
        last = conn.execute("SELECT coalesce(max(id), 0) FROM tally.fold_runs").fetchone()[0]
        started = time.monotonic()
        conn.execute("CALL tally.compact()")
        took = time.monotonic() - started
    runs = conn.execute(
        "SELECT DISTINCT slices FROM tally.fold_runs WHERE id > %s AND mode = 'delete' AND deltas > 0", (last,)
    ).fetchall()
    assert runs == [(None,)], runs
    assert took < 4, took  # no wait for a second compactor that is not there
    assert conn.execute("SELECT sum(value) FROM tally.totals").fetchone()[0] == 3000
