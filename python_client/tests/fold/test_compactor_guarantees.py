"""The README's promises, each held to with real sessions racing: writes never
wait on each other nor on a fold; a fold step that meets a deadlock, a lock
timeout or a statement timeout is rolled back, recorded and retried;
tally.maintain() skips what it cannot lock instead of queueing; a
statement_timeout ends compact_loop in time; maintain() drops the event-id
partitions past the window and only those.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
import workers


def value(conn: psycopg.Connection, counter: str, key: str) -> int:
    return conn.execute("SELECT tally.counter_value(%s, %s)", (counter, key)).fetchone()[0]


def runs(conn: psycopg.Connection, after: int) -> list[tuple]:
    """(outcome, SQLSTATE) of each fold_runs row after id `after` that is not a plain 'ok'."""
    return conn.execute(
        "SELECT outcome, left(error, 5) FROM tally.fold_runs WHERE id > %s AND outcome <> 'ok' ORDER BY id", (after,)
    ).fetchall()


def last_run(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT coalesce(max(id), 0) FROM tally.fold_runs").fetchone()[0]


def fold_stats(conn: psycopg.Connection) -> tuple:
    return conn.execute("SELECT retried_deadlocks, retried_other, abandoned FROM tally.fold_stats").fetchone()


def wait_for_lock_wait(conn: psycopg.Connection, application_name: str, timeout: float = 10) -> None:
    """Until the session named `application_name` waits on a heavyweight lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'",
            (application_name,),
        ).fetchone()[0]:
            return
        time.sleep(0.02)
    raise AssertionError(f"{application_name} never waited on a lock")


def test_writes_never_wait_on_open_writers_nor_on_an_open_fold(dsn: str, conn: psycopg.Connection) -> None:
    """Open transactions hold: a single increment of the hot key on each
    counter, a batch on both, and a fold (superuser, `BEGIN; SELECT
    tally._fold()`) that has upserted the hot key's total and buckets. A
    writer with lock_timeout = 20 ms then increments the same key of the same
    counters, singly and in batches: a single lock wait fails it with 55P03."""
    conn.execute("SELECT tally.create_counter('g_fast')")
    conn.execute("SELECT tally.create_counter('g_durable', p_durable => true)")
    for counter in ("g_fast", "g_durable"):
        conn.execute("SELECT tally.increment_counter(%s, 'hot', 1000)", (counter,))
    batch = "SELECT tally.increment_counters('{g_fast,g_durable,g_fast}', '{hot,hot,hot}', '{1,1,1}')"
    with (
        psycopg.connect(dsn, autocommit=True) as single,
        psycopg.connect(dsn, autocommit=True) as batcher,
        psycopg.connect(dsn, autocommit=True) as folder,
        psycopg.connect(dsn, autocommit=True) as writer,
    ):
        single.execute("BEGIN")
        single.execute("SELECT tally.increment_counter('g_fast', 'hot', 100)")
        single.execute("SELECT tally.increment_counter('g_durable', 'hot', 100)")
        batcher.execute("BEGIN")
        batcher.execute(batch)
        folder.execute("BEGIN")
        # the fold holds the fold lock, the rows of the hot key's total and
        # buckets, and has drained the shards the 1000s were in
        assert folder.execute("SELECT tally._fold()").fetchone()[0] == 2
        held = folder.execute(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted"
        ).fetchone()[0]
        assert held == 1

        writer.execute("SET lock_timeout = '20ms'")
        t0 = time.monotonic()
        for _ in range(50):
            assert writer.execute("SELECT tally.increment_counter('g_fast', 'hot')").fetchone()[0] is True
            assert writer.execute("SELECT tally.increment_counter('g_durable', 'hot')").fetchone()[0] is True
            assert writer.execute(batch).fetchone()[0] == 3
        elapsed = time.monotonic() - t0
        # a durable increment is one fsync'd commit: 150 commits, no waits
        assert elapsed < 10, f"150 increments took {elapsed:.1f}s"
        # the open transactions still count only once they commit
        single.execute("ROLLBACK")
        batcher.execute("COMMIT")
        folder.execute("ROLLBACK")
    conn.execute("CALL tally.compact()")
    assert value(conn, "g_fast", "hot") == 1000 + 50 * 3 + 2
    assert value(conn, "g_durable", "hot") == 1000 + 50 * 2 + 1


def test_a_deadlock_against_a_fold_step_is_retried_and_recorded(dsn: str, conn: psycopg.Connection) -> None:
    """A session holds the total of key 'b' and then wants key 'a', while a
    fold has upserted 'a' (sorted) and waits for 'b': a real deadlock. The
    fold detects it (deadlock_timeout 1 s; the session's is 60 s), its step is
    rolled back and recorded as 'retried' with 40P01, and the retry folds
    everything exactly once."""
    conn.execute("SELECT tally.create_counter('dl', '{}')")
    cid = conn.execute("SELECT id FROM tally.counters WHERE name = 'dl'").fetchone()[0]
    for key in ("a", "b"):
        conn.execute("SELECT tally.increment_counter('dl', %s, 1)", (key,))
    conn.execute("CALL tally.compact()")  # the totals rows of 'a' and 'b' exist
    for key in ("a", "b"):
        conn.execute("SELECT tally.increment_counter('dl', %s, 10)", (key,))
    deadlocks_before = workers.deadlocks(conn)
    stats_before = fold_stats(conn)
    after = last_run(conn)
    errors: list[BaseException] = []

    def fold() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute("SET application_name = 'g_folder'")
                c.execute("SET deadlock_timeout = '1s'")
                c.execute("CALL tally.compact()")
        except BaseException as exc:
            errors.append(exc)

    with psycopg.connect(dsn, autocommit=True) as rival:
        rival.execute("SET deadlock_timeout = '60s'")  # the fold, not this session, detects the cycle
        rival.execute("BEGIN")
        rival.execute("UPDATE tally.totals SET value = value WHERE counter_id = %s AND key = 'b'", (cid,))
        t = threading.Thread(target=fold)
        t.start()
        wait_for_lock_wait(conn, "g_folder")  # holds 'a', waits for 'b'
        rival.execute("UPDATE tally.totals SET value = value WHERE counter_id = %s AND key = 'a'", (cid,))
        rival.execute("COMMIT")  # got 'a': the fold's step was rolled back
        t.join(timeout=60)
    assert not t.is_alive() and errors == [], errors
    assert runs(conn, after) == [("retried", "40P01")]
    d, other, abandoned = fold_stats(conn)
    assert (d - stats_before[0], other - stats_before[1], abandoned - stats_before[2]) == (1, 0, 0)
    assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0
    assert (value(conn, "dl", "a"), value(conn, "dl", "b")) == (11, 11)
    assert workers.deadlocks(conn) == deadlocks_before + 1


def test_a_lock_timeout_in_every_attempt_is_retried_then_abandoned(dsn: str, conn: psycopg.Connection) -> None:
    """lock_timeout (55P03) in each of p_max_attempts = 3 attempts: two
    'retried', one 'failed', the CALL raises 55P03 and the deltas stay
    pending; the next compact() folds them exactly."""
    conn.execute("SELECT tally.create_counter('lt')")
    conn.execute("SELECT tally.increment_counter('lt', 'k', 5)")
    stats_before = fold_stats(conn)
    after = last_run(conn)
    with psycopg.connect(dsn, autocommit=True) as blocker, psycopg.connect(dsn, autocommit=True) as c:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE tally.totals IN SHARE MODE")
        c.execute("SET lock_timeout = '50ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            c.execute("CALL tally.compact(100000, 3)")
        blocker.execute("ROLLBACK")
    assert runs(conn, after) == [("retried", "55P03"), ("retried", "55P03"), ("failed", "55P03")]
    d, other, abandoned = fold_stats(conn)
    assert (d - stats_before[0], other - stats_before[1], abandoned - stats_before[2]) == (0, 2, 1)
    assert conn.execute("SELECT tally._pending()").fetchone()[0] == 1
    conn.execute("CALL tally.compact()")
    assert value(conn, "lt", "k") == 5
    assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0


def test_a_statement_timeout_inside_a_fold_is_retried_once(dsn: str, conn: psycopg.Connection) -> None:
    """statement_timeout (57014) bounds the CALL, one statement: it fires once,
    inside the attempt waiting on a lock; that attempt is rolled back and
    recorded, the retry waits for the lock and folds."""
    conn.execute("SELECT tally.create_counter('st')")
    conn.execute("SELECT tally.increment_counter('st', 'k', 7)")
    stats_before = fold_stats(conn)
    after = last_run(conn)
    with psycopg.connect(dsn, autocommit=True) as blocker, psycopg.connect(dsn, autocommit=True) as c:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE tally.totals IN SHARE MODE")
        unblock = threading.Timer(1.5, blocker.execute, args=("ROLLBACK",))
        unblock.start()
        c.execute("SET statement_timeout = '300ms'")
        c.execute("CALL tally.compact()")
        unblock.join()
    assert runs(conn, after) == [("retried", "57014")]
    d, other, abandoned = fold_stats(conn)
    assert (d - stats_before[0], other - stats_before[1], abandoned - stats_before[2]) == (0, 1, 0)
    assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0
    assert value(conn, "st", "k") == 7


def minute_partition_to_drop(conn: psycopg.Connection) -> str:
    """A counter keeping minutes forever with a bucket 20 days ago, then
    shortened to 10 days: maintain() has a rollup_minute partition to drop."""
    conn.execute("SELECT tally.create_counter('mt', '{minute}')")
    conn.execute("SELECT tally.set_retention('mt', 'minute', NULL)")
    at = datetime.now(UTC) - timedelta(days=20)
    conn.execute("SELECT tally.increment_counter('mt', 'k', 5, %s)", (at,))
    conn.execute("CALL tally.compact()")
    conn.execute("SELECT tally.set_retention('mt', 'minute', '10 days')")
    part = f"tally.rollup_minute_p{at:%Y_%m_%d}"
    assert conn.execute("SELECT to_regclass(%s) IS NOT NULL", (part,)).fetchone()[0]
    return part


def test_maintain_skips_a_locked_rollup_within_200_ms_and_blocks_no_one(dsn: str, conn: psycopg.Connection) -> None:
    """A reader holds tally.rollup_minute (ACCESS SHARE, an open transaction)
    while maintain() needs it exclusively to drop a partition: maintain
    skips it after its 200 ms lock_timeout instead of queueing, and returns
    in under a second. Meanwhile writers (lock_timeout 20 ms) write, and a
    fold that starts while maintain() runs finishes right after it. Once the
    reader is gone, the next maintain() drops the partition."""
    part = minute_partition_to_drop(conn)
    conn.execute("SELECT tally.increment_counter('mt', 'k', 1)")
    with (
        psycopg.connect(dsn, autocommit=True) as reader,
        psycopg.connect(dsn, autocommit=True) as m,
        psycopg.connect(dsn, autocommit=True) as writer,
        psycopg.connect(dsn, autocommit=True) as folder,
    ):
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM tally.rollup_minute").fetchone()
        m.execute("SET application_name = 'g_maintain'")
        result: dict[str, tuple] = {}

        def timed(name: str, conn: psycopg.Connection, sql: str) -> None:
            t0 = time.monotonic()
            try:
                cur = conn.execute(sql)
                rows = cur.fetchall() if cur.description else []
                result[name] = (rows, time.monotonic() - t0)
            except psycopg.Error as exc:
                result[name] = (f"SQLSTATE {exc.sqlstate}: {exc}".splitlines()[0], time.monotonic() - t0)

        mt = threading.Thread(target=timed, args=("maintain", m, "SELECT step, detail FROM tally.maintain()"))
        mt.start()
        wait_for_lock_wait(conn, "g_maintain")  # maintain() now waits on the reader, holding the fold lock
        ft = threading.Thread(target=timed, args=("fold", folder, "CALL tally.compact()"))
        ft.start()
        writer.execute("SET lock_timeout = '20ms'")
        for _ in range(20):
            writer.execute("SELECT tally.increment_counter('mt', 'k', 1)")
        mt.join(timeout=10)
        ft.join(timeout=10)
        reader.execute("COMMIT")
    (rows, elapsed), (fold_rows, fold_elapsed) = result["maintain"], result["fold"]
    assert isinstance(rows, list), f"maintain() failed instead of skipping the locked table: {rows}"
    assert fold_rows == [], f"the fold failed: {fold_rows}"
    assert ("skipped", "tally.rollup_minute: could not lock it within 200 ms; next run") in rows, rows
    assert elapsed < 1.0, f"maintain() took {elapsed:.2f}s with a table locked"
    assert fold_elapsed < 1.0, f"a fold waited {fold_elapsed:.2f}s behind maintain()"
    assert conn.execute("SELECT to_regclass(%s) IS NOT NULL", (part,)).fetchone()[0]

    steps = conn.execute("SELECT step, detail FROM tally.maintain()").fetchall()
    assert ("partitions", "tally.rollup_minute") in [(s, d.split(":")[0]) for s, d in steps], steps
    assert not any(s == "skipped" for s, _ in steps), steps
    assert conn.execute("SELECT to_regclass(%s) IS NULL", (part,)).fetchone()[0]
    conn.execute("CALL tally.compact()")
    assert value(conn, "mt", "k") == 5 + 1 + 20


def test_writers_go_on_while_maintain_is_held_open(dsn: str, conn: psycopg.Connection) -> None:
    """maintain() inside a transaction still open (it dropped a partition and
    holds its locks): increments (lock_timeout 20 ms) do not wait for it."""
    minute_partition_to_drop(conn)
    with psycopg.connect(dsn, autocommit=True) as m, psycopg.connect(dsn, autocommit=True) as writer:
        m.execute("BEGIN")
        steps = m.execute("SELECT step, detail FROM tally.maintain()").fetchall()
        dropped = [d for s, d in steps if s == "partitions" and d.startswith("tally.rollup_minute:")]
        assert len(dropped) == 1 and dropped[0].endswith("(-1)"), steps  # one partition dropped
        writer.execute("SET lock_timeout = '20ms'")
        for _ in range(20):
            assert writer.execute("SELECT tally.increment_counter('mt', 'k', 1)").fetchone()[0] is True
        m.execute("COMMIT")
    conn.execute("CALL tally.compact()")
    assert value(conn, "mt", "k") == 25


def test_compact_loop_ends_before_statement_timeout(dsn: str, conn: psycopg.Connection) -> None:
    """statement_timeout = 3 s, compact_loop(30, 0.2): the loop shortens
    itself to end one second before the timeout, returns normally, and has
    folded what was written while it ran."""
    conn.execute("SELECT tally.create_counter('cl')")
    conn.execute("SELECT tally.increment_counter('cl', 'k', 3)")
    stop = threading.Event()
    written = [0]

    def write() -> None:
        with psycopg.connect(dsn, autocommit=True) as w:
            while not stop.is_set():
                w.execute("SELECT tally.increment_counter('cl', 'k', 1)")
                written[0] += 1
                time.sleep(0.05)

    with psycopg.connect(dsn, autocommit=True) as c:
        t = threading.Thread(target=write)
        t.start()
        after = last_run(conn)
        c.execute("SET statement_timeout = '3s'")
        t0 = time.monotonic()
        c.execute("CALL tally.compact_loop(30, 0.2)")
        elapsed = time.monotonic() - t0
        stop.set()
        t.join()
    assert 1.9 < elapsed < 3.0, f"compact_loop returned after {elapsed:.2f}s"
    assert runs(conn, after) == []
    folded = conn.execute(
        "SELECT coalesce(sum(deltas), 0) FROM tally.fold_runs WHERE id > %s AND mode = 'delete'", (after,)
    ).fetchone()[0]
    assert folded >= 1 + 10, folded  # the 3 and the increments of its first 1.5 s at least
    conn.execute("CALL tally.compact()")
    assert value(conn, "cl", "k") == 3 + written[0]


def event_partitions(conn: psycopg.Connection) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT c.relname::text FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'tally.event_ids'::regclass ORDER BY 1"
        )
    ]


def test_maintain_drops_event_id_partitions_past_the_window_and_keeps_the_rest(
    dsn: str, conn: psycopg.Connection
) -> None:
    """With a 7-day window a new install has the partitions [T-7, T) and
    [T, T+7). Partitions left from before (the window was longer, or the days
    passed) that end on or before T-7 are dropped by maintain(); one that
    reaches into the window is kept; an id of the oldest partition kept is
    still a replay, one of a dropped partition is not remembered any more."""
    conn.execute("SELECT tally.create_counter('ev', p_durable => true)")
    cid = conn.execute("SELECT id FROM tally.counters WHERE name = 'ev'").fetchone()[0]
    conn.execute("SELECT tally.set_event_window(7)")
    today = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]

    def day(days_ago: int) -> date:
        return today - timedelta(days=days_ago)

    def name(days_ago: int) -> str:
        return f"event_ids_p{day(days_ago):%Y%m%d}"

    layout = [name(7), name(0)]
    assert event_partitions(conn) == layout
    for first, last in ((20, 9), (9, 8), (8, 7)):  # 11, 1 and 1 days: all wholly past the window
        conn.execute(
            f"CREATE TABLE tally.{name(first)} PARTITION OF tally.event_ids"
            f" FOR VALUES FROM ('{day(first)}') TO ('{day(last)}')"
        )
    for days_ago, event in ((7, "seven"), (8, "eight")):
        conn.execute(
            "INSERT INTO tally.event_ids (counter_id, event_id, seen_on) VALUES (%s, %s, %s)",
            (cid, event, day(days_ago)),
        )
    assert conn.execute("SELECT tally.increment_counter('ev', 'k', 1, now(), 'today')").fetchone()[0] is True

    steps = conn.execute("SELECT step, detail FROM tally.maintain()").fetchall()
    assert ("event_ids", f"window from {day(7)}: 0 partitions created, 3 dropped") in steps, steps
    assert event_partitions(conn) == layout
    assert conn.execute("SELECT day, next_day FROM tally.event_days ORDER BY day").fetchall() == [
        (day(7), day(0)),
        (day(0), day(-7)),
    ]
    # inside the window: replays; the partition past it is forgotten
    assert conn.execute("SELECT tally.increment_counter('ev', 'k', 1, now(), 'today')").fetchone()[0] is False
    assert conn.execute("SELECT tally.increment_counter('ev', 'k', 1, now(), 'seven')").fetchone()[0] is False
    assert conn.execute("SELECT tally.increment_counter('ev', 'k', 1, now(), 'eight')").fetchone()[0] is True
    conn.execute("CALL tally.compact()")
    assert value(conn, "ev", "k") == 2
    # a second run has nothing to do
    steps = conn.execute("SELECT step, detail FROM tally.maintain()").fetchall()
    assert ("event_ids", f"window from {day(7)}: 0 partitions created, 0 dropped") in steps


def test_event_id_partitions_follow_the_window(dsn: str, conn: psycopg.Connection) -> None:
    """A new partition starts where the last one ends and spans the window,
    up to 7 days; maintenance keeps one holding the day three days ahead,
    keeps a partition that reaches into the window, and makes again one
    dropped by hand that it still lists."""
    conn.execute("SELECT tally.create_counter('evw', p_durable => true)")
    today = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]

    def d(n: int) -> date:
        return today + timedelta(days=n)

    def layout() -> list[tuple[date, date]]:
        return conn.execute("SELECT day, next_day FROM tally.event_days ORDER BY day").fetchall()

    conn.execute("SELECT tally.set_event_window(2)")
    assert layout() == [(d(-7), d(0)), (d(0), d(7))]  # [T-7, T) reaches into [T-2, T]
    conn.execute(f"DROP TABLE tally.event_ids_p{today:%Y%m%d}")
    conn.execute("DELETE FROM tally.event_days WHERE day = %s", (today,))
    steps = dict(conn.execute("SELECT step, detail FROM tally.maintain()").fetchall())
    assert steps["event_ids"] == f"window from {d(-2)}: 2 partitions created, 0 dropped", steps
    assert layout() == [(d(-7), d(0)), (d(0), d(2)), (d(2), d(4))]
    conn.execute(f"DROP TABLE tally.event_ids_p{d(2):%Y%m%d}")  # still listed
    steps = dict(conn.execute("SELECT step, detail FROM tally.maintain()").fetchall())
    assert steps["event_ids"] == f"window from {d(-2)}: 1 partitions created, 0 dropped", steps
    assert layout() == [(d(-7), d(0)), (d(0), d(2)), (d(2), d(4))]
    assert conn.execute("SELECT tally.increment_counter('evw', 'k', 1, now(), 'w-1')").fetchone()[0] is True
    assert conn.execute("SELECT tally.increment_counter('evw', 'k', 1, now(), 'w-1')").fetchone()[0] is False
    assert conn.execute("SELECT seen_on FROM tally.event_ids WHERE event_id = 'w-1'").fetchall() == [(today,)]
    conn.execute("SELECT tally.set_event_window(7)")


def test_a_cancel_stops_the_compactor_at_once_recorded_as_retried(dsn: str, conn: psycopg.Connection) -> None:
    """pg_cancel_backend() of a compact() whose step waits on the fold lock
    stops it (not retried like a statement_timeout), with the step rolled
    back and recorded as retried, not as a failed fold: health stays ok."""
    conn.execute("SELECT tally.create_counter('cx')")
    conn.execute("SELECT tally.increment_counter('cx', 'k', 3)")
    conn.execute("SELECT pg_advisory_lock(tally._fold_lock_key())")
    after = last_run(conn)
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True, application_name="cancelled loop") as c:
                c.execute("CALL tally.compact()")
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=loop)
    t.start()
    try:
        wait_for_lock_wait(conn, "cancelled loop")
        started = time.monotonic()
        conn.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'cancelled loop'")
        t.join(timeout=30)
        assert not t.is_alive() and time.monotonic() - started < 5
    finally:
        conn.execute("SELECT pg_advisory_unlock(tally._fold_lock_key())")
    (err,) = errors
    assert isinstance(err, psycopg.errors.QueryCanceled), err
    assert "a compactor step was cancelled" in str(err)
    assert ("retried", "57014") in runs(conn, after) and ("failed", "57014") not in runs(conn, after)
    assert dict(conn.execute('SELECT "check", status FROM tally.health').fetchall())["folds"] == "ok"
    conn.execute("CALL tally.compact()")
    assert value(conn, "cx", "k") == 3


def test_the_compactor_runs_the_module_tally_holds_now(dsn: str, conn: psycopg.Connection) -> None:
    """compact and compact_loop run tally._compactor()'s body, loaded once per
    session and version: a session that already ran it runs the new code
    once the function is made again (as a migration does)."""
    body = conn.execute("SELECT prosrc FROM pg_proc WHERE oid = 'tally._compactor()'::regprocedure").fetchone()[0]
    with psycopg.connect(dsn, autocommit=True) as session:
        session.execute("CALL tally.compact()")  # loaded
        conn.execute(
            "CREATE OR REPLACE FUNCTION tally._compactor() RETURNS void LANGUAGE plpython3u AS $python$\n"
            "def compact(plpy, *args):\n    plpy.error('the new compactor')\n$python$"
        )
        try:
            with pytest.raises(psycopg.errors.InternalError, match="the new compactor"):
                session.execute("CALL tally.compact()")
        finally:
            conn.execute(
                "CREATE OR REPLACE FUNCTION tally._compactor() RETURNS void LANGUAGE plpython3u AS "
                + "$python$"
                + body
                + "$python$"
            )
        session.execute("CALL tally.compact()")  # and back


def health(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    return {c: (s, r) for c, s, r in conn.execute('SELECT "check", status, reason FROM tally.health').fetchall()}


PLANS = [
    "",
    "SET enable_nestloop = off; SET enable_mergejoin = off",
    "SET enable_hashjoin = off; SET enable_mergejoin = off",
    "SET enable_nestloop = off; SET enable_hashjoin = off",
    "SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_nestloop = off",
]


@pytest.mark.parametrize("plan", PLANS)
def test_maintenance_and_the_compactor_survive_any_plan_of_their_catalog_queries(
    conn: psycopg.Connection, plan: str
) -> None:
    # The new user's reproduction: a wide window, catalog statistics that make
    # the planner scan all of pg_class; then every planner choice.
    conn.execute("SELECT tally.set_event_window(30)")
    conn.execute("CALL tally.compact_loop(0.2, 0.1)")
    conn.execute("ANALYZE pg_catalog.pg_inherits")
    conn.execute("ANALYZE pg_catalog.pg_class")
    for stmt in filter(None, plan.split("; ")):
        conn.execute(stmt)
    conn.execute("CALL tally.compact_loop(0.2, 0.1)")
    steps = conn.execute("SELECT step, detail FROM tally.maintain()").fetchall()
    assert [s for s, _ in steps if s == "failed"] == []
    # shrinking the window drops exactly the partitions that fell out of it
    conn.execute("SELECT tally.set_event_window(7)")
    window_from = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date - 7").fetchone()[0]
    ends = [r[0] for r in conn.execute("SELECT next_day FROM tally.event_days ORDER BY day")]
    assert ends and min(ends) > window_from, ends
    parts = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'tally.event_ids'::regclass").fetchone()[0]
    assert parts == len(ends)
    failed = conn.execute("SELECT count(*) FROM tally.fold_runs WHERE outcome = 'failed'").fetchone()[0]
    assert failed == 0


def test_a_failing_fold_is_recorded_and_compact_loop_goes_on(conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('f')")
    conn.execute(
        """
        CREATE FUNCTION public.refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.key = 'boom' THEN
                RAISE EXCEPTION 'no boom here' USING ERRCODE = 'P0042';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    conn.execute(
        "CREATE TRIGGER refuse_boom BEFORE INSERT OR UPDATE ON tally.totals"
        " FOR EACH ROW EXECUTE FUNCTION public.refuse_boom()"
    )
    conn.execute("SELECT tally.increment_counter('f', 'boom')")
    # compact() raises the step's own error, after recording it
    with pytest.raises(psycopg.Error) as raised:
        conn.execute("CALL tally.compact()")
    assert raised.value.sqlstate == "P0042"
    assert "no boom here" in str(raised.value)
    # compact_loop does not stop: it records each failure and keeps going
    conn.execute("CALL tally.compact_loop(1.5, 0.2)")
    failed = conn.execute(
        "SELECT count(*), min(error) FROM tally.fold_runs WHERE outcome = 'failed' AND mode IS NULL"
    ).fetchone()
    # one from compact(), then one (at least) per round of the loop
    assert failed[0] >= 2 and failed[1] == "P0042: no boom here"
    assert conn.execute("SELECT abandoned FROM tally.fold_stats").fetchone()[0] == failed[0]
    status, reason = health(conn)["folds"]
    assert status == "critical" and f"{failed[0]} folds abandoned" in reason
    # fixed: the next run folds everything, nothing lost
    conn.execute("DROP TRIGGER refuse_boom ON tally.totals")
    conn.execute("CALL tally.compact()")
    assert conn.execute("SELECT tally.counter_value('f', 'boom')").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0


def test_a_failing_maintenance_is_recorded_and_folding_goes_on(conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('m')")
    # pg_partman cannot read this interval: its maintenance of rollup_hour fails
    conn.execute(
        "UPDATE partman.part_config SET partition_interval = 'not an interval' WHERE parent_table = 'tally.rollup_hour'"
    )
    steps = conn.execute("SELECT step, detail FROM tally.maintain()").fetchall()
    failed = [d for s, d in steps if s == "failed"]
    assert len(failed) == 1 and failed[0].startswith(
        "tally.rollup_hour: P0001: invalid input syntax for type interval"
    ), steps
    assert ("fold_runs", "0 rows older than 7 days pruned") in steps  # the other steps still ran
    assert sum(1 for s, _ in steps if s == "partitions") == 4
    conn.execute("SELECT tally.increment_counter('m', 'k', 3)")
    conn.execute("CALL tally.compact_loop(0.5, 0.1)")  # runs maintenance first: fails again, folds anyway
    assert conn.execute("SELECT tally.counter_value('m', 'k')").fetchone()[0] == 3
    assert conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0
    runs = conn.execute("SELECT outcome, error FROM tally.fold_runs WHERE mode = 'maintenance' ORDER BY id").fetchall()
    assert [o for o, _ in runs] == ["failed", "failed"] and all("not an interval" in e for _, e in runs)
    status, reason = health(conn)["maintenance"]
    assert status == "warn" and "tally.rollup_hour: P0001" in reason
    assert health(conn)["folds"][0] == "ok"
