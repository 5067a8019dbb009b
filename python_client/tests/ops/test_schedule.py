"""pg_cron runs the compactor: in the database pg_cron lives in
(cron.database_name, `tally` on the project's cluster), schedule_compactor()
installs the jobs, pg_cron starts tally.compact_loop() within a minute and
it folds; unschedule_compactor() removes them. With p_workers => N it runs
one compactor per key slice.
"""

from __future__ import annotations

import time
import uuid

import psycopg
from conftest import CLUSTER, alembic
from psycopg.conninfo import make_conninfo


def test_pg_cron_runs_the_compactor() -> None:
    with psycopg.connect(make_conninfo(**CLUSTER), autocommit=True) as admin:
        cron_db = admin.execute("SELECT current_setting('cron.database_name')").fetchone()[0]
    dsn = make_conninfo(**{**CLUSTER, "dbname": cron_db})
    alembic(dsn, "upgrade", "head")
    name = f"cron_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT tally.unschedule_compactor()")
        # No compactor left running from an earlier schedule: only the job
        # scheduled below may fold what this test writes.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'CALL tally.compact_loop%%' AND pid <> pg_backend_pid()"
        )
        conn.execute("SELECT tally.create_counter(%s, '{minute}')", (name,))
        counter_id = conn.execute("SELECT id FROM tally.counters WHERE name = %s", (name,)).fetchone()[0]
        try:
            for delta in (1, 2, 3):
                conn.execute("SELECT tally.increment_counter(%s, 'k', %s)", (name, delta))
            jobs = conn.execute("SELECT jobname, schedule, command FROM tally.schedule_compactor(20, 0.5)").fetchall()
            assert jobs == [
                ("tally-compactor", "* * * * *", "CALL tally.compact_loop(20, 0.5)"),
                ("tally-maintenance", "17 * * * *", "SELECT tally.maintain()"),
            ]
            # Scheduling again updates the jobs rather than adding more.
            conn.execute("SELECT tally.schedule_compactor(20, 0.5)")
            assert conn.execute("SELECT count(*) FROM cron.job WHERE jobname LIKE 'tally-%'").fetchone()[0] == 2

            deadline = time.monotonic() + 100
            while time.monotonic() < deadline:
                pending = conn.execute(
                    "SELECT count(*) FROM tally.delta WHERE counter_id = %s", (counter_id,)
                ).fetchone()[0]
                if pending == 0:
                    break
                time.sleep(1)
            assert pending == 0, "pg_cron did not run the compactor within 100 s"
            assert (
                conn.execute("SELECT value FROM tally.totals WHERE counter_id = %s", (counter_id,)).fetchone()[0] == 6
            )
            ran = conn.execute(
                "SELECT count(*) FROM cron.job_run_details AS d JOIN cron.job AS j USING (jobid)"
                " WHERE j.jobname = 'tally-compactor'"
            ).fetchone()[0]
            assert ran >= 1
        finally:
            removed = conn.execute("SELECT tally.unschedule_compactor()").fetchone()[0]
            conn.execute("SELECT tally.drop_counter(%s)", (name,))
        assert removed == 2
        assert conn.execute("SELECT count(*) FROM cron.job WHERE jobname LIKE 'tally-%'").fetchone()[0] == 0


JOBS = (
    "SELECT jobname, command FROM cron.job WHERE jobname LIKE 'tally-%%' AND database = current_database()"
    " ORDER BY jobname"
)


def loop(k: int, n: int) -> str:
    return f"CALL tally.compact_loop(20, 0.5, p_slice => {k}, p_slices => {n})"


def test_pg_cron_runs_one_compactor_per_slice() -> None:
    with psycopg.connect(make_conninfo(**CLUSTER), autocommit=True) as admin:
        cron_db = admin.execute("SELECT current_setting('cron.database_name')").fetchone()[0]
    dsn = make_conninfo(**{**CLUSTER, "dbname": cron_db})
    alembic(dsn, "upgrade", "head")
    name = f"cron_par_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT tally.unschedule_compactor()")
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'CALL tally.compact_loop%%' AND pid <> pg_backend_pid()"
        )
        conn.execute("SELECT tally.create_counter(%s, '{minute}')", (name,))
        counter_id = conn.execute("SELECT id FROM tally.counters WHERE name = %s", (name,)).fetchone()[0]
        try:
            rows = conn.execute("SELECT jobname, command FROM tally.schedule_compactor(20, 0.5, p_workers => 3)")
            expected3 = [(f"tally-compactor-{k}", loop(k, 3)) for k in range(3)]
            assert rows.fetchall() == [*expected3, ("tally-maintenance", "SELECT tally.maintain()")]
            assert conn.execute(JOBS).fetchall() == [*expected3, ("tally-maintenance", "SELECT tally.maintain()")]

            # Fewer workers: the extra job goes, the others change their slice count.
            conn.execute("SELECT tally.schedule_compactor(20, 0.5, p_workers => 2)")
            expected2 = [(f"tally-compactor-{k}", loop(k, 2)) for k in range(2)]
            assert conn.execute(JOBS).fetchall() == [*expected2, ("tally-maintenance", "SELECT tally.maintain()")]

            # One worker: the single job of before, no slice jobs left.
            conn.execute("SELECT tally.schedule_compactor(20, 0.5)")
            assert conn.execute(JOBS).fetchall() == [
                ("tally-compactor", "CALL tally.compact_loop(20, 0.5)"),
                ("tally-maintenance", "SELECT tally.maintain()"),
            ]

            conn.execute("SELECT tally.schedule_compactor(20, 0.5, p_workers => 2)")
            assert conn.execute(JOBS).fetchall() == [*expected2, ("tally-maintenance", "SELECT tally.maintain()")]
            keys = [str(k) for k in range(200)]
            conn.execute(
                "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[])",
                ([name] * len(keys), keys, list(range(1, len(keys) + 1))),
            )
            deadline = time.monotonic() + 100
            while time.monotonic() < deadline:
                pending = conn.execute(
                    "SELECT count(*) FROM tally.delta WHERE counter_id = %s", (counter_id,)
                ).fetchone()[0]
                if pending == 0:
                    break
                time.sleep(1)
            assert pending == 0, "pg_cron's slice compactors did not fold within 100 s"
            assert conn.execute("SELECT sum(value) FROM tally.totals WHERE counter_id = %s", (counter_id,)).fetchone()[
                0
            ] == sum(range(1, len(keys) + 1))
            # both slices' loops folded (each folds only its own keys)
            slices = conn.execute(
                "SELECT array_agg(DISTINCT slice ORDER BY slice) FROM tally.fold_runs"
                " WHERE slices = 2 AND mode = 'delete' AND deltas > 0 AND started_at > now() - interval '3 minutes'"
            ).fetchone()[0]
            assert slices == [0, 1]
        finally:
            removed = conn.execute("SELECT tally.unschedule_compactor()").fetchone()[0]
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
                " AND query LIKE 'CALL tally.compact_loop%%' AND pid <> pg_backend_pid()"
            )
            conn.execute("SELECT tally.drop_counter(%s)", (name,))
        assert removed == 3
        assert conn.execute("SELECT count(*) FROM cron.job WHERE jobname LIKE 'tally-%'").fetchone()[0] == 0
