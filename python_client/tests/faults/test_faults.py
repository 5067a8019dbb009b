"""Faults during folds: killed compactor backends, statement and lock
timeouts firing inside folds, a server restart mid-load. After each, every
value at every granularity equals the ground truth the test keeps.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest
import workers
from conftest import REPO
from load import check_exact, keep_everything, run_load

COUNTERS = ["views_fast", "follows_durable"]


def setup_counters(conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('views_fast')")
    conn.execute("SELECT tally.create_counter('follows_durable', p_durable => true)")
    keep_everything(conn, COUNTERS)


def fold_lock_holders(conn: psycopg.Connection) -> list[int]:
    """Compactor backends holding the fold lock right now, i.e. mid-fold."""
    rows = conn.execute(
        """
        SELECT l.pid FROM pg_locks AS l
        JOIN pg_stat_activity AS a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.database = (
                SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid = (tally._fold_lock_key() >> 32)::oid AND l.objid = (tally._fold_lock_key() & 4294967295)::oid
          AND a.application_name LIKE 'tally test compactor%%'
        """
    ).fetchall()
    return [r[0] for r in rows]


def test_compactor_killed_twenty_times_mid_fold(dsn: str, conn: psycopg.Connection) -> None:
    setup_counters(conn)
    deadlocks_before = workers.deadlocks(conn)
    kills: list[int] = []

    def killer() -> None:
        rnd = random.Random(7)
        with psycopg.connect(dsn, autocommit=True) as k:
            deadline = time.monotonic() + 300
            while len(kills) < 20 and time.monotonic() < deadline:
                holders = fold_lock_holders(k)
                if holders:
                    pid = rnd.choice(holders)
                    if k.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]:
                        kills.append(pid)
                    time.sleep(rnd.uniform(0.05, 0.4))
                else:
                    time.sleep(0.005)

    truth, compactor_results = run_load(
        dsn,
        COUNTERS,
        writers=8,
        iterations=900,
        compactors=2,
        max_deltas=5_000,
        days_back=30,
        reconnect=True,
        during=killer,
    )
    assert len(kills) == 20, f"only {len(kills)} folds were killed"
    assert sum(lost for *_, lost in compactor_results) == 20
    check_exact(conn, truth, days_back=30)
    assert workers.deadlocks(conn) == deadlocks_before


def test_statement_and_lock_timeouts_inside_folds(dsn: str, conn: psycopg.Connection) -> None:
    setup_counters(conn)
    deadlocks_before = workers.deadlocks(conn)

    def timeouts() -> None:
        # A compactor the test drives itself, next to the load's own, and a
        # session holding a lock the fold's upsert of the totals needs.
        with psycopg.connect(dsn, autocommit=True) as c, psycopg.connect(dsn, autocommit=True) as blocker:
            time.sleep(1.0)
            # 1. statement_timeout fires inside a fold waiting on the lock:
            # that attempt is rolled back and retried, and the call succeeds.
            # Something to fold, whether or not the writers are still at it.
            c.execute("SELECT tally.increment_counter('views_fast', 'blocked', 1)")
            blocker.execute("BEGIN")
            blocker.execute("LOCK TABLE tally.totals IN SHARE MODE")
            unblock = threading.Timer(0.6, blocker.execute, args=("ROLLBACK",))
            unblock.start()
            c.execute("SET statement_timeout = '150ms'")
            c.execute("CALL tally.compact(50000, 5)")
            c.execute("RESET statement_timeout")
            unblock.join()
            # 2. lock_timeout fires inside every attempt while the lock is
            # held: the call gives up after 3 attempts, the deltas stay pending.
            c.execute("SELECT tally.increment_counter('views_fast', 'blocked', 1)")
            blocker.execute("BEGIN")
            blocker.execute("LOCK TABLE tally.totals IN SHARE MODE")
            c.execute("SET lock_timeout = '20ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                c.execute("CALL tally.compact(50000, 3)")
            blocker.execute("ROLLBACK")
            c.execute("RESET lock_timeout")

    truth, _ = run_load(dsn, COUNTERS, writers=8, iterations=500, compactors=1, days_back=30, during=timeouts)

    runs = dict(
        conn.execute("SELECT left(error, 5), count(*) FROM tally.fold_runs WHERE outcome <> 'ok' GROUP BY 1").fetchall()
    )
    # Only the test's own compactor has timeouts (the load's just waits):
    # statement_timeout fires once per CALL (one statement), inside a step
    # waiting on a lock, which is retried; lock_timeout fires in each of the
    # 3 attempts of the step that needs the lock, and the call gives up.
    # The two plain compactors share the work (each takes a seat), so under
    # its 20 ms lock_timeout the test's may also time out waiting for the
    # other's fold or bucket locks: retried, and recorded, like the rest.
    assert set(runs) == {"57014", "55P03"} and runs["57014"] == 1 and runs["55P03"] >= 3, runs
    failed = conn.execute("SELECT count(*) FROM tally.fold_runs WHERE outcome = 'failed'").fetchone()[0]
    assert failed == 1  # gave up after 3 attempts: its deltas stayed pending
    check_exact(conn, truth, days_back=30)
    assert workers.deadlocks(conn) == deadlocks_before


@pytest.mark.parametrize("slices", [1, 2], ids=["two plain compactors", "two slice compactors"])
def test_server_restart_mid_load(dsn: str, conn: psycopg.Connection, slices: int) -> None:
    setup_counters(conn)
    conn.execute("CREATE TABLE acks (writer int, seq int, PRIMARY KEY (writer, seq))")
    datadir = subprocess.check_output([str(REPO / "scripts" / "db.sh"), "datadir"], text=True).strip()

    def restart() -> None:
        # Once both compactors are connected (spawned processes start slowly
        # on a loaded machine), and the load has run a moment.
        deadline = time.monotonic() + 120
        while (
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'tally test compactor %'"
            ).fetchone()[0]
            < 2
        ):
            assert time.monotonic() < deadline, "the compactors never connected"
            time.sleep(0.2)
        time.sleep(3)
        # The postmaster inherits pg_ctl's stdout: give it the cluster's log
        # file, not a pipe this test would wait on forever.
        log = str(Path(datadir).parent / "postgres.log")
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                "/usr/lib/postgresql/15/bin/pg_ctl",
                "-D",
                datadir,
                "-l",
                log,
                "-m",
                "fast",
                "-w",
                "-t",
                "120",
                "restart",
            ],
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    truth, compactor_results = run_load(
        dsn,
        COUNTERS,
        writers=8,
        iterations=700,
        compactors=2,
        days_back=30,
        writer_fn=workers.acked_writer,
        reconnect=True,
        during=restart,
        slices=slices,
    )
    assert sum(lost for *_, lost in compactor_results) >= 1, "the restart did not hit the compactors"
    with psycopg.connect(dsn, autocommit=True) as fresh:
        check_exact(fresh, truth, days_back=30)
        failed = fresh.execute("SELECT count(*) FROM tally.fold_runs WHERE outcome <> 'ok'").fetchone()[0]
        if slices > 1:
            folded = dict(
                fresh.execute(
                    "SELECT slice, sum(deltas) FROM tally.fold_runs WHERE slices = %s AND mode = 'delete'"
                    " GROUP BY slice",
                    (slices,),
                ).fetchall()
            )
            assert sorted(folded) == list(range(slices)) and all(n > 0 for n in folded.values()), folded
    assert failed == 0
