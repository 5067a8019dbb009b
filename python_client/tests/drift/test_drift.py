"""Drift: a rollup corrupted behind tally's back shows as drift and
reconcile repairs it; a source of truth that disagrees shows as drift.
"""

from __future__ import annotations

import psycopg


def health(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute('SELECT "check", status FROM tally.health'))


def test_a_corrupted_rollup_shows_as_drift_and_reconcile_repairs_it(conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('views')")
    for i in range(10):
        conn.execute("SELECT tally.increment_counter('views', 'n1', 1, now() - make_interval(hours => %s))", (i % 3,))
    conn.execute("CALL tally.compact()")
    assert conn.execute("SELECT count(*) FROM tally.check_drift('views')").fetchone()[0] == 0
    assert health(conn)["drift"] == "ok"

    conn.execute(
        "UPDATE tally.rollup_day SET value = value + 7"
        " WHERE counter_id = (SELECT id FROM tally.counters WHERE name = 'views') AND key = 'n1'"
        " AND bucket = date_trunc('day', now(), 'UTC')"
    )
    findings = conn.execute("SELECT key, kind, expected, actual FROM tally.check_drift('views')").fetchall()
    assert ("n1", "internal") in {(k, kind) for k, kind, *_ in findings}
    drift = conn.execute("SELECT keys_checked, inconsistent_keys FROM tally.drift WHERE counter = 'views'").fetchone()
    assert drift == (1, 1)
    assert health(conn)["drift"] == "warn"

    repairs = conn.execute("SELECT granularity, delta, reason FROM tally.reconcile('views', '{n1}')").fetchall()
    assert ("day", -7, "internal") in repairs
    assert conn.execute("SELECT count(*) FROM tally.check_drift('views')").fetchone()[0] == 0
    assert conn.execute("SELECT tally.counter_value('views', 'n1')").fetchone()[0] == 10
    assert conn.execute("SELECT count(*) FROM tally.corrections WHERE reason LIKE 'internal:%'").fetchone()[0] >= 1
    assert health(conn)["drift"] == "ok"


def test_a_source_of_truth_that_disagrees_shows_as_drift(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE follow (subject text, follower text)")
    conn.execute("SELECT tally.create_counter('followers')")
    for who in ("b", "c", "d"):
        conn.execute("INSERT INTO follow VALUES ('alice', %s)", (who,))
        conn.execute("SELECT tally.increment_counter('followers', 'alice')")
    conn.execute("SELECT tally.set_source('followers', 'SELECT count(*) FROM public.follow WHERE subject = $1')")
    assert conn.execute("SELECT count(*) FROM tally.check_drift('followers')").fetchone()[0] == 0
    # A follow that never reached the counter (the app forgot to count it).
    conn.execute("CALL tally.compact()")
    conn.execute("INSERT INTO follow VALUES ('alice', 'e')")
    rows = conn.execute("SELECT kind, expected, actual FROM tally.check_drift('followers')").fetchall()
    assert rows == [("source", 4, 3)]
    assert conn.execute(
        "SELECT drifting_keys, max_abs_drift FROM tally.drift WHERE counter = 'followers'"
    ).fetchone() == (1, 1)
    assert conn.execute("SELECT delta, reason FROM tally.reconcile('followers', '{alice}')").fetchall() == [
        (1, "source")
    ]
    assert conn.execute("SELECT tally.counter_value('followers', 'alice')").fetchone()[0] == 4
    assert conn.execute("SELECT count(*) FROM tally.check_drift('followers')").fetchone()[0] == 0
