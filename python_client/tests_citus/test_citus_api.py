"""The SQL API, unchanged, against the Citus coordinator: every public
function a user calls, with exact answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg


def test_the_public_api_works_unchanged_on_the_coordinator(cconn: psycopg.Connection, name: str) -> None:
    day = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
    cconn.execute("SELECT tally.create_counter(%s, ARRAY['hour', 'day'])", (name,))
    assert cconn.execute(
        "SELECT tally.increment_counters(ARRAY[%s, %s, %s]::text[], ARRAY['a', 'b', 'a'], ARRAY[1, 2, 3]::bigint[],"
        " ARRAY[%s, %s, %s]::timestamptz[])",
        (name, name, name, day, day - timedelta(days=1), day),
    ).fetchone() == (3,)
    assert cconn.execute("SELECT tally.increment_counter(%s, 'c', -5, %s)", (name, day)).fetchone() == (True,)
    # pending deltas count in reads before any fold, and after it
    for _ in range(2):
        assert cconn.execute("SELECT tally.counter_value(%s, 'a')", (name,)).fetchone() == (4,)
        assert cconn.execute(
            "SELECT bucket, value FROM tally.counter_series(%s, 'b', 'day', %s, %s)",
            (name, day - timedelta(days=3), day + timedelta(days=1)),
        ).fetchall() == [(day.replace(hour=0) - timedelta(days=1), 2)]
        cconn.execute("CALL tally.compact()")
    assert cconn.execute(
        "SELECT key, value FROM tally.top_keys(%s, 'day', %s, 5)", (name, day.replace(hour=0))
    ).fetchall() == [("a", 4), ("c", -5)]
    # retention, maintenance, drift and its repair
    cconn.execute("SELECT tally.set_retention(%s, 'hour', interval '30 days')", (name,))
    assert cconn.execute(
        "SELECT keep FROM tally.retention_policies WHERE counter = %s AND granularity = 'hour'", (name,)
    ).fetchone() == (timedelta(days=30),)
    failed = cconn.execute("SELECT step, detail FROM tally.maintain() WHERE step = 'failed'").fetchall()
    assert failed == []
    src = f"src_{name}"
    cconn.execute(f"CREATE TABLE public.{src} (k text, n bigint)")
    cconn.execute(f"INSERT INTO public.{src} VALUES ('a', 4), ('b', 3), ('c', -5)")
    cconn.execute("SELECT tally.set_source(%s, %s)", (name, f"SELECT n FROM public.{src} WHERE k = $1"))
    drift = cconn.execute("SELECT key, expected, actual FROM tally.check_drift(%s)", (name,)).fetchall()
    assert drift == [("b", 3, 2)]
    assert cconn.execute("SELECT key, delta FROM tally.reconcile(%s, ARRAY['b'])", (name,)).fetchall() == [("b", 1)]
    assert cconn.execute("SELECT tally.counter_value(%s, 'b')", (name,)).fetchone() == (3,)
    cconn.execute("CALL tally.compact()")  # (a correction is a delta: folded like any other)
    assert cconn.execute("SELECT tally.counter_value(%s, 'b')", (name,)).fetchone() == (3,)
    # the views a monitor reads
    status = dict(cconn.execute('SELECT "check", status FROM tally.health').fetchall())
    assert set(status) == {"compactor", "lag", "folds", "maintenance", "drift", "crash", "quarantine"}
    assert status["crash"] == "ok" and status["folds"] == "ok"
    assert cconn.execute("SELECT pending_deltas FROM tally.counter_status WHERE counter = %s", (name,)).fetchone() == (
        0,
    )
    # bad input: the same errors as on a single node
    try:
        cconn.execute("SELECT tally.increment_counter(%s, '', 1)", (name,))
        raise AssertionError("an empty key was accepted")
    except psycopg.errors.NullValueNotAllowed as exc:  # 22004, as on a single node
        assert "tally.increment_counter: key must not be NULL or empty" in str(exc)
    cconn.execute("SELECT tally.drop_counter(%s)", (name,))
    assert cconn.execute("SELECT count(*) FROM tally.counters WHERE name = %s", (name,)).fetchone() == (0,)
    cconn.execute(f"DROP TABLE public.{src}")
