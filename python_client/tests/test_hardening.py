"""The compactor never stops, and nothing is silently wrong: one test per
defect a new user hit, each failing on the code before the fix.

- maintenance and the compactor survive any plan of their catalog queries;
- poison that overflows inside one fold chunk is set aside, the rest folds;
- a failed compactor or maintenance step is recorded, and compact_loop goes on;
- tally_admin cannot forge internal state through internal functions;
- health says "never run" right after install, a crash can be acknowledged,
  and one key's poison never fails a read of the others.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

BIGINT_MAX = 9223372036854775807


@contextlib.contextmanager
def login(admin: psycopg.Connection, dsn: str, *roles: str) -> Iterator[psycopg.Connection]:
    """A connection as a fresh LOGIN role that is a member of `roles` only."""
    name = f"tally_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE ROLE {name} LOGIN IN ROLE {', '.join(roles)}")
    try:
        with psycopg.connect(make_conninfo(**{**conninfo_to_dict(dsn), "user": name}), autocommit=True) as c:
            yield c
    finally:
        db = admin.info.dbname
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND datname = %s", (name, db)
        )
        admin.execute(f"DROP OWNED BY {name}")
        admin.execute(f"DROP ROLE {name}")


def health(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    return {c: (s, r) for c, s, r in conn.execute('SELECT "check", status, reason FROM tally.health').fetchall()}


# 1. Plan-independent catalog queries -------------------------------------

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
    # shrinking the window drops exactly the days that fell out of it
    conn.execute("SELECT tally.set_event_window(7)")
    days = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'tally.event_ids'::regclass").fetchone()[0]
    assert days == 7 + 1 + 3  # the window, today, three days ahead
    failed = conn.execute("SELECT count(*) FROM tally.fold_runs WHERE outcome = 'failed'").fetchone()[0]
    assert failed == 0


# 2. Poison inside one chunk ----------------------------------------------


def test_overflow_inside_one_chunk_is_set_aside_and_the_rest_folds(conn: psycopg.Connection, dsn: str) -> None:
    """The issue's reproduction as tally_writer: over the whole shard the
    poison key sums to 0, but the first chunk of 100,000 deltas holds two
    bigint-max deltas: before, every fold re-raised 22003 forever."""
    conn.execute("SELECT tally.create_counter('c')")
    with login(conn, dsn, "tally_writer") as w:
        w.execute(
            "SELECT tally.increment_counters("
            " array_fill('c'::text, ARRAY[100000]), array_fill('w'::text, ARRAY[100000]),"
            " ARRAY[9223372036854775807, 9223372036854775807]::bigint[] || array_fill(0::bigint, ARRAY[99998]))"
        )
        w.execute(
            "SELECT tally.increment_counters(array_fill('c'::text, ARRAY[2000]), array_fill('w'::text, ARRAY[2000]),"
            " ARRAY[-9223372036854775807, -9223372036854775807]::bigint[] || array_fill(0::bigint, ARRAY[1998]))"
        )
        # legitimate increments beside it, in the same bulk shard and elsewhere
        w.execute(
            "SELECT tally.increment_counters(array_fill('c'::text, ARRAY[3000]),"
            " array(SELECT 'k' || (g % 10) FROM generate_series(1, 3000) AS g), array_fill(1::bigint, ARRAY[3000]))"
        )
        w.execute("SELECT tally.increment_counter('c', 'single', 5)")
    conn.execute("CALL tally.compact()")
    assert conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0
    values = dict(conn.execute("SELECT key, value FROM tally.totals").fetchall())
    assert {k: v for k, v in values.items() if k != "w"} == {**{f"k{i}": 300 for i in range(10)}, "single": 5}
    # every delta of the poison key is kept, none counted twice: folded + set aside = sent
    folded = values.get("w", 0)
    n, total = conn.execute("SELECT count(*), sum(delta) FROM tally.quarantine WHERE key = 'w'").fetchone()
    assert folded + int(total) == 0
    # the chunk that overflowed held 100,000 deltas of the key, the next 2,000:
    # each chunk's deltas of that key are set aside whole, zeros included
    assert n == 102_000
    assert health(conn)["quarantine"][0] == "warn"
    assert (
        conn.execute("SELECT count(*) FROM tally.fold_runs WHERE mode = 'quarantine' AND outcome = 'ok'").fetchone()[0]
        == 2
    )
    # and it keeps folding
    conn.execute("SELECT tally.increment_counter('c', 'after', 1)")
    conn.execute("CALL tally.compact()")
    assert conn.execute("SELECT tally.counter_value('c', 'after')").fetchone()[0] == 1


def test_overflow_at_a_chunk_boundary_and_across_shards(conn: psycopg.Connection, dsn: str) -> None:
    """bigint-max deltas of one key as the last row of one chunk and the first
    of the next, and in two shards (two sessions): each chunk folds what
    fits, sets aside what does not; the sum of folded and set aside is what
    was sent."""
    conn.execute("SELECT tally.create_counter('b', '{minute,day}')")
    conn.execute(
        "SELECT tally.increment_counters(array_fill('b'::text, ARRAY[1001]),"
        " array(SELECT CASE WHEN g = 1000 THEN 'p' ELSE 'q' || (g % 7) END FROM generate_series(1, 1001) AS g),"
        " array(SELECT CASE WHEN g = 1000 THEN 9223372036854775807 ELSE 1 END FROM generate_series(1, 1001) AS g))"
    )
    conn.execute("SELECT tally.increment_counter('b', 'p', 9223372036854775807)")
    others = []
    while not others or others[-1].info.backend_pid % 3 == conn.info.backend_pid % 3:
        others.append(psycopg.connect(dsn, autocommit=True))  # until one writes to another per-worker shard
    others[-1].execute("SELECT tally.increment_counter('b', 'p', 9223372036854775807)")
    for c in others:
        c.close()
    conn.execute("CALL tally.compact(1000)")  # chunks of 1,000: the bulk batch's row 1000 ends the first
    assert conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0
    values = dict(
        conn.execute(
            "SELECT t.key, t.value FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id"
            " WHERE c.name = 'b'"
        ).fetchall()
    )
    assert {k: v for k, v in values.items() if k != "p"} == {
        f"q{i}": sum(1 for g in range(1, 1002) if g != 1000 and g % 7 == i) for i in range(7)
    }
    quarantined = conn.execute("SELECT coalesce(sum(delta), 0) FROM tally.quarantine WHERE key = 'p'").fetchone()[0]
    assert values.get("p", 0) + int(quarantined) == 3 * BIGINT_MAX
    assert values.get("p", 0) == BIGINT_MAX  # the first one folds; the two that would overflow are set aside
    day = conn.execute("SELECT value FROM tally.rollup_day WHERE key = 'p'").fetchone()[0]
    assert day == BIGINT_MAX


# 3. Failures are recorded, the loop goes on ------------------------------


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


# 4. No forging through internal functions --------------------------------

INTERNAL_CALLS = [
    ("_record_drift", "SELECT tally._record_drift(1, 1, '[]'::jsonb, false)"),
    ("_correct", "SELECT tally._correct('c', 'k', 1000000, 'x')"),
    ("_record_fold", "SELECT tally._record_fold(now(), 0, 1, 'ok', NULL)"),
    ("_fold_step", "SELECT * FROM tally._fold_step(100)"),
    ("_detect_crash_reset", "SELECT tally._detect_crash_reset()"),
    ("_event_partitions", "SELECT * FROM tally._event_partitions()"),
]


def test_tally_admin_cannot_forge_internal_state(conn: psycopg.Connection, dsn: str) -> None:
    conn.execute("SELECT tally.create_counter('c')")
    conn.execute("SELECT tally.increment_counter('c', 'k', 2)")
    before = conn.execute("SELECT count(*) FROM tally.fold_runs").fetchone()[0]
    with login(conn, dsn, "tally_admin") as admin:
        for name, sql in INTERNAL_CALLS:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                admin.execute(sql)
            assert name  # each refused
        # what the admin may do works, through the public functions only
        admin.execute("CALL tally.compact()")
        assert [s for s, _ in admin.execute("SELECT * FROM tally.maintain()").fetchall() if s == "failed"] == []
        assert admin.execute("SELECT count(*) FROM tally.check_drift('c')").fetchone()[0] == 0
        admin.execute("CALL tally.compact_loop(0.3, 0.1)")
    assert conn.execute("SELECT tally.counter_value('c', 'k')").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM tally.corrections").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM tally.fold_runs").fetchone()[0] > before


# 5. Health tells the truth -----------------------------------------------


def test_health_right_after_install_says_never_run(conn: psycopg.Connection) -> None:
    status, reason = health(conn)["compactor"]
    assert status == "warn" and reason.startswith("never run: no compactor step since install")
    conn.execute("CALL tally.compact()")
    assert health(conn)["compactor"] == ("ok", "nothing pending")


def test_a_recorded_crash_can_be_acknowledged(conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM tally.crash_marker")  # what a crash does to the UNLOGGED marker
    conn.execute("CALL tally.compact()")  # records the reset
    assert health(conn)["crash"][0] == "critical"
    assert conn.execute("SELECT tally.acknowledge_crash()").fetchone()[0] == 1
    status, reason = health(conn)["crash"]
    assert status == "ok" and "acknowledged by postgres" in reason


def test_one_keys_overflow_never_fails_a_read_of_the_others(conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('r')")
    conn.execute(
        "SELECT tally.increment_counters('{r,r,r}', '{poison,poison,fine}',"
        " '{9223372036854775807,9223372036854775807,5}')"
    )
    conn.execute("SELECT tally.increment_counter('r', 'other', 2)")
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    top = conn.execute("SELECT key, value FROM tally.top_keys('r', 'all', NULL)").fetchall()
    assert top == [("fine", 5), ("other", 2)]
    day = conn.execute("SELECT key, value FROM tally.top_keys('r', 'day', now())").fetchall()
    assert day == [("fine", 5), ("other", 2)]
    assert sum('key "poison" of counter "r" left out' in n for n in notices) == 2
    assert conn.execute("SELECT tally.counter_value('r', 'fine')").fetchone()[0] == 5
