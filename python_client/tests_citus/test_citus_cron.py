"""pg_cron on the coordinator runs the compactor of a distributed install:
a job in pg_cron's database (cron.schedule_in_database) calls
tally.compact_loop() in this suite's database, and folds on the workers."""

from __future__ import annotations

import time

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def test_pg_cron_on_the_coordinator_folds_a_distributed_install(
    citus_dsn: str, cconn: psycopg.Connection, name: str
) -> None:
    params = conninfo_to_dict(citus_dsn)
    cron_db = cconn.execute("SELECT current_setting('cron.database_name')").fetchone()[0]
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    cconn.execute(
        "SELECT tally.increment_counters(array_fill(%s::text, ARRAY[500]),"
        " ARRAY(SELECT (g %% 50)::text FROM generate_series(1, 500) AS g), array_fill(2::bigint, ARRAY[500]))",
        (name,),
    )
    runs_before = cconn.execute("SELECT coalesce(max(id), 0) FROM tally.fold_runs").fetchone()[0]
    job = f"tally-citus-{name}"
    with psycopg.connect(make_conninfo(**{**params, "dbname": cron_db}), autocommit=True) as cron:
        cron.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
        cron.execute(
            "SELECT cron.schedule_in_database(%s, '* * * * *', 'CALL tally.compact_loop(30, 0.5)', %s)",
            (job, params["dbname"]),
        )
        try:
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                folded = cconn.execute(
                    "SELECT coalesce(sum(deltas), 0) FROM tally.fold_runs WHERE id > %s AND outcome = 'ok'"
                    " AND mode = 'delete'",
                    (runs_before,),
                ).fetchone()[0]
                if folded >= 500:
                    break
                time.sleep(2)
            runs = cron.execute(
                "SELECT d.status, d.return_message FROM cron.job_run_details AS d JOIN cron.job AS j USING (jobid)"
                " WHERE j.jobname = %s",
                (job,),
            ).fetchall()
        finally:
            cron.execute("SELECT cron.unschedule(%s)", (job,))
            # the loop pg_cron started ends now, not in the next test
            stop = time.monotonic() + 30
            while (
                cconn.execute(
                    "SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query = 'CALL tally.compact_loop(30, 0.5)'"
                    " AND pid <> pg_backend_pid()"
                ).fetchone()[0]
                and time.monotonic() < stop
            ):
                time.sleep(0.5)
    assert folded >= 500, runs
    assert runs and all(status != "failed" for status, _ in runs), runs
    assert (
        cconn.execute(
            "SELECT count(*) FROM tally.delta WHERE counter_id = (SELECT id FROM tally.counters WHERE name = %s)",
            (name,),
        ).fetchone()[0]
        == 0
    )
    for k in range(50):
        assert cconn.execute("SELECT tally.counter_value(%s, %s)", (name, str(k))).fetchone()[0] == 20
