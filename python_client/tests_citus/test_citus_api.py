"""The SQL API, unchanged, against the Citus coordinator: every public
function a user calls, with exact answers."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


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
    checks = {"node", "compactor", "lag", "backlog", "folds", "maintenance", "drift", "crash", "quarantine"}
    assert set(status) == checks
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


def test_deadlocks_are_reported_per_node(cconn: psycopg.Connection) -> None:
    """tally.node_deadlocks(): one row per node, the coordinator and both
    workers, each that node's own count (a deadlock made on purpose on one
    worker shows there, and only there)."""
    nodes = cconn.execute(
        "SELECT format('%s:%s', nodename, nodeport) FROM pg_dist_node ORDER BY groupid, nodename, nodeport"
    ).fetchall()
    before = dict(cconn.execute("SELECT node, deadlocks FROM tally.node_deadlocks()").fetchall())
    assert sorted(before) == sorted(n for (n,) in nodes)
    worker = nodes[1][0]
    params = conninfo_to_dict(cconn.info.dsn)
    dsn = make_conninfo(**{**params, "port": worker.split(":")[1]})
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute("DROP TABLE IF EXISTS public.deadlock_demo")
        setup.execute("CREATE TABLE public.deadlock_demo (id int PRIMARY KEY)")
        setup.execute("INSERT INTO public.deadlock_demo VALUES (1), (2)")
    a, b = psycopg.connect(dsn), psycopg.connect(dsn)
    a.execute("UPDATE public.deadlock_demo SET id = id WHERE id = 1")
    b.execute("UPDATE public.deadlock_demo SET id = id WHERE id = 2")
    outcome: list[str] = []

    def second() -> None:
        try:
            b.execute("UPDATE public.deadlock_demo SET id = id WHERE id = 1")
            outcome.append("b went on")
        except psycopg.errors.DeadlockDetected:
            outcome.append("b deadlocked")

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.3)
    try:
        a.execute("UPDATE public.deadlock_demo SET id = id WHERE id = 2")
        outcome.append("a went on")
    except psycopg.errors.DeadlockDetected:
        outcome.append("a deadlocked")
    t.join(timeout=30)
    for c in (a, b):
        c.rollback()
        c.execute("SELECT pg_stat_force_next_flush()")
        c.close()
    assert len(outcome) == 2 and sum(o.endswith("deadlocked") for o in outcome) == 1, outcome
    with psycopg.connect(dsn, autocommit=True) as setup:
        setup.execute("DROP TABLE public.deadlock_demo")
    after = dict(cconn.execute("SELECT node, deadlocks FROM tally.node_deadlocks()").fetchall())
    assert {n: after[n] - before[n] for n in after} == {n: int(n == worker) for n in after}


def test_node_status_pending_deltas_and_quarantine_release_on_the_coordinator(
    cconn: psycopg.Connection, name: str
) -> None:
    """The reads added for standbys and operators, and the way out of
    quarantine, on a distributed install: the same answers as on one node."""
    assert cconn.execute("SELECT role, unrecorded_crash FROM tally.node_status()").fetchone() == ("primary", False)
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    cconn.execute(
        "SELECT tally.increment_counters(ARRAY[%s, %s, %s]::text[], ARRAY['a', 'b', 'p'],"
        " ARRAY[1, 2, 9223372036854775807]::bigint[])",
        (name, name, name),
    )
    cconn.execute("SELECT tally.increment_counter(%s, 'p', 10)", (name,))
    assert cconn.execute(
        "SELECT sum(deltas)::bigint FROM tally.pending_deltas() WHERE counter = %s", (name,)
    ).fetchone() == (4,)
    assert cconn.execute(
        "SELECT pending_deltas, pending_complete FROM tally.counter_status WHERE counter = %s", (name,)
    ).fetchone() == (4, True)
    cconn.execute("CALL tally.compact()")
    assert cconn.execute("SELECT key, deltas FROM tally.quarantined WHERE counter = %s", (name,)).fetchall() == [
        ("p", 2)
    ]
    notices: list[str] = []
    cconn.add_notice_handler(lambda d: notices.append(d.message_primary))
    assert cconn.execute("SELECT tally.counter_value(%s, 'p')", (name,)).fetchone() == (0,)
    assert any("has 2 deltas set aside" in n for n in notices), notices
    assert cconn.execute("SELECT tally.release_quarantined(%s, 'p', 'discard')", (name,)).fetchone() == (2,)
    assert cconn.execute("SELECT count(*) FROM tally.quarantined WHERE counter = %s", (name,)).fetchone() == (0,)
    assert cconn.execute(
        "SELECT r.action, r.deltas FROM tally.quarantine_releases AS r JOIN tally.counters AS c ON c.id = r.counter_id"
        " WHERE c.name = %s",
        (name,),
    ).fetchall() == [("discard", 2)]
    assert cconn.execute(
        "SELECT tally.counter_value(%s, 'a'), tally.counter_value(%s, 'b')", (name, name)
    ).fetchone() == (
        1,
        2,
    )
    cconn.execute("SELECT tally.drop_counter(%s)", (name,))


def test_a_counter_in_a_time_zone_cuts_local_buckets_on_citus(cconn: psycopg.Connection, name: str) -> None:
    """New York's 25-hour day (2026-11-01: EDT ends) and Kolkata's half-hour
    hours, pending and folded on the workers, whatever the session's zone."""
    ny, kol = f"{name}_ny", f"{name}_kol"
    cconn.execute("SET TimeZone = 'Asia/Tokyo'")
    cconn.execute("SELECT tally.create_counter(%s, p_time_zone => 'America/New_York')", (ny,))
    cconn.execute("SELECT tally.create_counter(%s, p_time_zone => 'Asia/Kolkata')", (kol,))
    try:
        at = [
            datetime(2026, 11, 1, 3, 30, tzinfo=UTC),  # Oct 31, 23:30 EDT
            datetime(2026, 11, 1, 4, 0, tzinfo=UTC),  # Nov 1, 00:00 EDT
            datetime(2026, 11, 2, 4, 30, tzinfo=UTC),  # Nov 1, 23:30 EST
            datetime(2026, 11, 2, 5, 0, tzinfo=UTC),  # Nov 2, 00:00 EST
        ]
        cconn.execute(
            "SELECT tally.increment_counters(array_fill(%s::text, ARRAY[4]), array_fill('k'::text, ARRAY[4]),"
            " ARRAY[1, 10, 100, 1000]::bigint[], %s::timestamptz[])",
            (ny, at),
        )
        cconn.execute("SELECT tally.increment_counter(%s, 'k', 1, '2026-11-01 00:10+00')", (kol,))  # 05:40 IST
        days = [
            (datetime(2026, 10, 31, 4, tzinfo=UTC), 1),
            (datetime(2026, 11, 1, 4, tzinfo=UTC), 110),
            (datetime(2026, 11, 2, 5, tzinfo=UTC), 1000),
        ]
        for _ in range(2):  # pending, then folded
            rows = cconn.execute(
                "SELECT bucket, value FROM tally.counter_series(%s, 'k', 'day', '2026-10-30', '2026-11-05')", (ny,)
            ).fetchall()
            assert [(b.astimezone(UTC), v) for b, v in rows] == days
            rows = cconn.execute(
                "SELECT bucket, value FROM tally.counter_series(%s, 'k', 'hour', '2026-10-31', '2026-11-02')", (kol,)
            ).fetchall()
            assert [(b.astimezone(UTC), v) for b, v in rows] == [(datetime(2026, 10, 31, 23, 30, tzinfo=UTC), 1)]
            assert cconn.execute(
                "SELECT key, value FROM tally.top_keys(%s, 'day', '2026-11-02 04:59+00')", (ny,)
            ).fetchall() == [("k", 110)]
            cconn.execute("CALL tally.compact()")
        folded = cconn.execute(
            "SELECT r.bucket, r.value FROM tally.rollup_day AS r JOIN tally.counters AS c ON c.id = r.counter_id"
            " WHERE c.name = %s ORDER BY r.bucket",
            (ny,),
        ).fetchall()
        assert [(b.astimezone(UTC), v) for b, v in folded] == days
        try:
            cconn.execute("SELECT tally.set_time_zone(%s, 'UTC')", (ny,))
            raise AssertionError("set_time_zone changed the zone of a counter with data")
        except psycopg.errors.ObjectNotInPrerequisiteState as exc:
            assert "already has data" in str(exc)
    finally:  # (a counter in another zone than UTC would stop a downgrade below 0006 in later tests)
        cconn.execute("SELECT tally.drop_counter(%s)", (ny,))
        cconn.execute("SELECT tally.drop_counter(%s)", (kol,))


def test_backlog_limits_hold_writers_back_on_every_node(
    cconn: psycopg.Connection, name: str, node_dsns: list[str]
) -> None:
    """Over the refuse limit an increment is refused (53400, nothing
    appended) through the coordinator and through every worker, its fast
    path included; once a compactor folded the backlog, writers are in."""
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    cconn.execute(
        "SELECT tally.increment_counters(array_fill(%s::text, ARRAY[3000]),"
        " ARRAY(SELECT 'k' || g FROM generate_series(1, 3000) AS g), array_fill(1::bigint, ARRAY[3000]))",
        (name,),
    )
    try:
        cconn.execute("SELECT tally.set_backlog_limits(1000, 2000)")
        cconn.execute("DELETE FROM tally.backlog_samples")
        assert cconn.execute("SELECT tally.sample_backlog()").fetchone() == (3000,)
        for dsn in node_dsns:
            with psycopg.connect(dsn, autocommit=True) as c:
                for sql in (
                    "SELECT tally.increment_counter(%s, 'k1')",
                    "SELECT tally.increment_counters(ARRAY[%s], ARRAY['k2'], ARRAY[1::bigint])",
                ):
                    try:
                        c.execute(sql, (name,))
                        raise AssertionError(f"{sql} was not refused on {dsn}")
                    except psycopg.errors.ConfigurationLimitExceeded:
                        pass
        assert cconn.execute("SELECT tally._pending()").fetchone() == (3000,)
        cconn.execute("CALL tally.compact()")
        time.sleep(2.1)  # (a sample every 2 s while writers are held back)
        assert cconn.execute("SELECT tally.sample_backlog()").fetchone() == (0,)
        for dsn in node_dsns:
            with psycopg.connect(dsn, autocommit=True) as c:
                assert c.execute("SELECT tally.increment_counter(%s, 'k1')", (name,)).fetchone() == (True,)
        assert cconn.execute("SELECT tally.counter_value(%s, 'k1')", (name,)).fetchone() == (1 + len(node_dsns),)
    finally:
        cconn.execute("SELECT tally.set_backlog_limits(NULL, NULL)")
