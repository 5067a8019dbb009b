"""Tracked tables beyond one transaction: the isolation rules, an online
backfill interrupted and finished later, how long writers wait for each
kind of tracking, and a downgrade taking the triggers away."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from conftest import alembic

FOLLOW = "CREATE TABLE follow (id bigserial PRIMARY KEY, subject integer, follower integer)"


def _count_matches(conn: psycopg.Connection, counter: str = "followers") -> bool:
    truth = dict(conn.execute("SELECT subject::text, count(*) FROM follow WHERE subject IS NOT NULL GROUP BY 1"))
    keys = [*sorted(truth), "never"]
    got = dict(conn.execute("SELECT * FROM tally.counter_values(%s, %s)", (counter, keys)).fetchall())
    return all(got[k] == truth.get(k, 0) for k in keys)


def test_tracking_and_truncate_need_read_committed(conn: psycopg.Connection, dsn: str) -> None:
    """An older snapshot than the table's lock would miss rows committed
    before it: tracking, backfilling and TRUNCATE refuse REPEATABLE READ
    with 25000, and change nothing."""
    conn.execute(FOLLOW)
    conn.execute("INSERT INTO follow (subject, follower) VALUES (1, 1), (1, 2)")
    conn.execute("SELECT tally.create_counter('followers')")
    with psycopg.connect(dsn) as rr:
        rr.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with pytest.raises(psycopg.errors.InvalidTransactionState, match="READ COMMITTED only, not REPEATABLE READ"):
            rr.execute("SELECT tally.track_table('followers', 'follow', 'subject')")
        rr.rollback()
    assert conn.execute("SELECT count(*) FROM tally.tracked_tables").fetchone() == (0,)
    conn.execute("SELECT tally.track_table('followers', 'follow', 'subject', p_online => true)")
    with psycopg.connect(dsn) as rr:
        rr.isolation_level = psycopg.IsolationLevel.SERIALIZABLE
        with pytest.raises(psycopg.errors.InvalidTransactionState):
            rr.execute("SELECT tally.backfill_tracked('followers')")
        rr.rollback()
    assert conn.execute("SELECT tally.backfill_tracked('followers')").fetchone() == (2,)
    with psycopg.connect(dsn) as rr:
        rr.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with pytest.raises(psycopg.errors.InvalidTransactionState, match="TRUNCATE of table follow"):
            rr.execute("TRUNCATE follow")
        rr.rollback()
    assert conn.execute("SELECT count(*) FROM follow").fetchone() == (2,)
    assert _count_matches(conn)


def test_online_backfill_interrupted_is_finished_later(conn: psycopg.Connection) -> None:
    """Between the triggers and the backfill the counter holds only what the
    triggers counted (state 'backfilling'); the backfill, whenever it runs,
    adds exactly the rows there before; called again it changes nothing."""
    conn.execute(FOLLOW)
    conn.execute("INSERT INTO follow (subject, follower) SELECT g % 5, g FROM generate_series(1, 500) AS g")
    conn.execute("SELECT tally.create_counter('followers')")
    assert conn.execute("SELECT tally.track_table('followers', 'follow', 'subject', p_online => true)").fetchone() == (
        None,
    )
    conn.execute("INSERT INTO follow (subject, follower) VALUES (1, 1000), (2, 1001)")
    conn.execute("DELETE FROM follow WHERE follower < 50")
    conn.execute("UPDATE follow SET subject = 4 WHERE follower BETWEEN 50 AND 80")
    assert conn.execute("SELECT state FROM tally.tracked_tables").fetchone() == ("backfilling",)
    assert not _count_matches(conn)
    assert conn.execute("SELECT count(*) FROM tally.tracked_log").fetchone()[0] > 0
    conn.execute("CALL tally.compact()")  # folds what the triggers counted meanwhile
    assert conn.execute("SELECT tally.backfill_tracked('followers')").fetchone() == (500,)
    assert _count_matches(conn)
    assert conn.execute("SELECT state, backfilled FROM tally.tracked_tables").fetchone() == ("active", 500)
    assert conn.execute("SELECT count(*) FROM tally.tracked_log").fetchone() == (0,)
    assert conn.execute("SELECT tally.backfill_tracked('followers')").fetchone() == (500,)
    assert _count_matches(conn)
    # the trigger function no longer logs
    conn.execute("INSERT INTO follow (subject, follower) VALUES (3, 2000)")
    assert conn.execute("SELECT count(*) FROM tally.tracked_log").fetchone() == (0,)
    assert _count_matches(conn)


def _writer_waits(dsn: str, call: str) -> tuple[float, int]:
    """The longest a single-row INSERT into `follow` waited while `call`
    tracked the table, and the count it returned."""
    waits: list[float] = []
    stop = threading.Event()

    def write() -> None:
        with psycopg.connect(dsn, autocommit=True) as w:
            i = 0
            while not stop.is_set():
                t = time.monotonic()
                w.execute("INSERT INTO follow (subject, follower) VALUES (%s, %s)", (i % 100, -i))
                waits.append(time.monotonic() - t)
                i += 1

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(0.3)
    with psycopg.connect(dsn, autocommit=True) as admin:
        (counted,) = admin.execute(call).fetchone()
    time.sleep(0.3)
    stop.set()
    thread.join()
    return max(waits), counted


def test_online_tracking_does_not_hold_writers_for_the_scan(conn: psycopg.Connection, dsn: str) -> None:
    """2,000,000 rows: tracked in one transaction, a writer waits for the
    whole scan; online, only for CREATE TRIGGER (a fraction of it). Both
    counts exact. The waits measured are printed."""
    conn.execute(FOLLOW)
    conn.execute("INSERT INTO follow (subject, follower) SELECT g % 1000, g FROM generate_series(1, 2000000) AS g")
    conn.execute("VACUUM ANALYZE follow")
    conn.execute("SELECT tally.create_counter('followers')")
    conn.execute("SELECT tally.create_counter('followers_online')")
    locked, counted = _writer_waits(dsn, "SELECT tally.track_table('followers', 'follow', 'subject')")
    assert counted >= 2_000_000
    online, counted_online = _writer_waits(
        dsn, "CALL tally.track_table_online('followers_online', 'follow', 'subject', p_counted => NULL)"
    )
    assert counted_online >= counted
    print(f"\nwriters waited at most {locked:.3f} s (in one transaction) vs {online:.3f} s (online) for 2,000,000 rows")
    assert online < locked / 3, (online, locked)
    assert _count_matches(conn, "followers")
    assert _count_matches(conn, "followers_online")


def test_downgrade_takes_the_triggers_away(fresh_db: str) -> None:
    """Revision 0005 has no tracked tables: a downgrade drops the triggers,
    the trigger functions and the event triggers; the application's table
    and statements are untouched and the counter keeps what it counted."""
    alembic(fresh_db, "upgrade", "head")
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute(FOLLOW)
        c.execute("INSERT INTO follow (subject, follower) VALUES (1, 1), (1, 2), (2, 3)")
        c.execute("SELECT tally.create_counter('followers')")
        assert c.execute("SELECT tally.track_table('followers', 'follow', 'subject')").fetchone() == (3,)
    alembic(fresh_db, "downgrade", "0005")
    with psycopg.connect(fresh_db, autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'follow'::regclass").fetchone() == (0,)
        assert c.execute("SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'tally%'").fetchone() == (0,)
        assert c.execute(
            "SELECT count(*) FROM pg_proc WHERE pronamespace = 'tally'::regnamespace AND proname LIKE '%track%'"
        ).fetchone() == (0,)
        c.execute("INSERT INTO follow (subject, follower) VALUES (1, 4)")
        c.execute("ALTER TABLE follow RENAME COLUMN subject TO subject_id")
        assert c.execute("SELECT tally.counter_value('followers', '1')").fetchone() == (2,)
    alembic(fresh_db, "upgrade", "head")
    with psycopg.connect(fresh_db, autocommit=True) as c:
        assert c.execute("SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'tally%'").fetchone() == (3,)
