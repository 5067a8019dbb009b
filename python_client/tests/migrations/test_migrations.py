"""alembic: upgrade head installs everything, downgrade base removes it
without a trace (tally's version table included), and upgrade head works
again."""

from __future__ import annotations

import subprocess
from datetime import timedelta

import psycopg
import pytest
from conftest import alembic
from psycopg.conninfo import make_conninfo

SNAPSHOT = """
SELECT 'schema ' || nspname FROM pg_namespace
 WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
UNION ALL SELECT 'extension ' || extname FROM pg_extension
UNION ALL SELECT 'relation ' || n.nspname || '.' || c.relname FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\\_temp%'
   AND n.nspname NOT LIKE 'pg\\_toast%'
UNION ALL SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL SELECT 'type ' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
ORDER BY 1
"""


def snapshot(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as c:
        return [r[0] for r in c.execute(SNAPSHOT)]


def smoke(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT tally.create_counter('rt', '{hour,day}')")
        c.execute("SELECT tally.increment_counter('rt', 'k', 41)")
        c.execute("SELECT tally.increment_counter('rt', 'k', 1, now() - interval '3 years')")
        c.execute("CALL tally.compact()")
        return c.execute("SELECT tally.counter_value('rt', 'k')").fetchone()[0]


def test_up_down_up_leaves_no_trace(fresh_db: str) -> None:
    before = snapshot(fresh_db)
    alembic(fresh_db, "upgrade", "head")
    installed = snapshot(fresh_db)
    assert "schema tally" in installed and "extension pg_partman" in installed
    assert smoke(fresh_db) == 42

    assert "relation tally.alembic_version" in installed
    assert not [line for line in installed if line.startswith("relation public.")]

    alembic(fresh_db, "downgrade", "base")
    assert snapshot(fresh_db) == before
    assert not [line for line in before if "alembic_version" in line or line == "schema tally"]

    alembic(fresh_db, "upgrade", "head")
    assert smoke(fresh_db) == 42


def test_downgrade_keeps_extensions_it_did_not_create(fresh_db: str) -> None:
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute("CREATE SCHEMA partman")
        c.execute("CREATE EXTENSION pg_partman SCHEMA partman")
    alembic(fresh_db, "upgrade", "head")
    alembic(fresh_db, "downgrade", "base")
    with psycopg.connect(fresh_db) as c:
        assert c.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_partman'").fetchone()[0] == 1
        assert c.execute("SELECT count(*) FROM partman.part_config").fetchone()[0] == 0


def test_0002_replaces_the_increment_functions_and_keeps_their_grants(fresh_db: str) -> None:
    """An operator granted EXECUTE on 0001's increment functions and SELECT on
    a view to an application login; after upgrading to 0002 (which changes the
    functions' signatures) the login can still do exactly that, with the new
    signatures, no overload left behind; and back down to 0001, too."""
    login = "tally_mig_app"
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute(f"DROP ROLE IF EXISTS {login}")
        c.execute(f"CREATE ROLE {login} LOGIN")
    try:
        alembic(fresh_db, "upgrade", "0001")
        with psycopg.connect(fresh_db, autocommit=True) as c:
            c.execute("SELECT tally.create_counter('mig')")
            c.execute(f"GRANT USAGE ON SCHEMA tally TO {login}")
            c.execute(f"GRANT EXECUTE ON FUNCTION tally.increment_counter(text, text, bigint, timestamptz) TO {login}")
            c.execute(f"GRANT SELECT ON tally.health TO {login}")
            # an operator's own objects in schema tally
            c.execute("CREATE FUNCTION tally.my_helper() RETURNS integer LANGUAGE sql RETURN 42")
            c.execute("CREATE VIEW tally.my_counters AS SELECT name FROM tally.counters")
        app = make_conninfo(fresh_db, user=login)

        def operators_objects_kept() -> bool:
            with psycopg.connect(fresh_db, autocommit=True) as c:
                return c.execute(
                    "SELECT tally.my_helper() = 42 AND (SELECT count(*) FROM tally.my_counters) = 1"
                ).fetchone()[0]

        def app_can() -> tuple[bool, bool, bool]:
            with psycopg.connect(app, autocommit=True) as a:
                inc = a.execute("SELECT tally.increment_counter('mig', 'k')").fetchone()[0]
                health = len(a.execute("SELECT * FROM tally.health").fetchall()) > 0
                try:
                    a.execute("SELECT tally.counter_value('mig', 'k')")
                    read = True
                except psycopg.errors.InsufficientPrivilege:
                    read = False
                return inc, health, read

        assert app_can()[:2] == (True, True)
        alembic(fresh_db, "upgrade", "0002")
        with psycopg.connect(fresh_db, autocommit=True) as c:
            sigs = [
                r[0]
                for r in c.execute(
                    "SELECT p.oid::regprocedure::text FROM pg_proc AS p"
                    " WHERE p.pronamespace = 'tally'::regnamespace AND p.proname = 'increment_counter'"
                )
            ]
            assert sigs == ["tally.increment_counter(text,text,bigint,timestamp with time zone,text)"]
            assert c.execute(f"SELECT has_function_privilege('{login}', %s, 'EXECUTE')", (sigs[0],)).fetchone()[0]
            # nothing else became reachable: PUBLIC lost its default EXECUTE
            assert not c.execute(
                f"SELECT has_function_privilege('{login}', 'tally.counter_value(text, text)', 'EXECUTE')"
            ).fetchone()[0]
        assert app_can() == (True, True, False)
        assert operators_objects_kept()
        with psycopg.connect(app, autocommit=True) as a:
            assert a.execute("SELECT tally.increment_counter('mig', 'k', 1, now(), 'e-1')").fetchone()[0] is True
            assert a.execute("SELECT tally.increment_counter('mig', 'k', 1, now(), 'e-1')").fetchone()[0] is False

        alembic(fresh_db, "downgrade", "0001")
        assert operators_objects_kept()
        inc, health, _ = app_can()
        assert (inc, health) == (True, True)
        with psycopg.connect(fresh_db, autocommit=True) as c:
            assert c.execute("SELECT tally.counter_value('mig', 'k')").fetchone()[0] == 4
    finally:
        with psycopg.connect(fresh_db, autocommit=True) as c:
            c.execute(f"DROP OWNED BY {login}")
            c.execute(f"DROP ROLE {login}")


def test_0006_moves_the_event_ids_kept_and_a_downgrade_moves_them_back(fresh_db: str) -> None:
    """Ids applied under 0005 (daily partitions) on each day of the window,
    and one the day before it: after upgrading to 0006 (partitions of up to
    7 days) every id of the window is still a replay, in the new layout;
    back at 0005, the same, in daily partitions again; the id past the
    window is applied again either way."""
    alembic(fresh_db, "upgrade", "0005")
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute("SELECT tally.create_counter('mv', p_durable => true)")
        cid = c.execute("SELECT id FROM tally.counters WHERE name = 'mv'").fetchone()[0]
        today = c.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]
        assert c.execute("SELECT tally.increment_counter('mv', 'k', 1, now(), 'today')").fetchone()[0] is True
        day8 = today - timedelta(days=8)
        c.execute(
            f"CREATE TABLE tally.event_ids_p{day8:%Y%m%d} PARTITION OF tally.event_ids"
            f" FOR VALUES FROM ('{day8}') TO ('{day8 + timedelta(days=1)}')"
        )
        c.execute(
            "INSERT INTO tally.event_ids (counter_id, event_id, seen_on)"
            " SELECT %s, 'ago-' || n, (now() AT TIME ZONE 'UTC')::date - n FROM generate_series(1, 8) AS n",
            (cid,),
        )
    window = ["today"] + [f"ago-{n}" for n in range(1, 8)]

    def replays() -> None:
        with psycopg.connect(fresh_db, autocommit=True) as c:
            sql = "SELECT tally.increment_counter('mv', 'k', 1, now(), %s)"
            assert [c.execute(sql, (event,)).fetchone()[0] for event in window] == [False] * len(window)
            assert c.execute(sql, ("ago-8",)).fetchone()[0] is True
            c.execute("DELETE FROM tally.event_ids WHERE event_id = 'ago-8'")  # for the next round
            assert c.execute("SELECT count(*) FROM tally.event_ids").fetchone()[0] == len(window)

    alembic(fresh_db, "upgrade", "0006")
    with psycopg.connect(fresh_db, autocommit=True) as c:
        assert c.execute("SELECT day, next_day FROM tally.event_days ORDER BY day").fetchall() == [
            (today - timedelta(days=7), today),
            (today, today + timedelta(days=7)),
        ]
    replays()
    alembic(fresh_db, "downgrade", "0005")
    with psycopg.connect(fresh_db, autocommit=True) as c:
        days = c.execute("SELECT count(*) FROM tally.event_days").fetchone()[0]
        parts = c.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'tally.event_ids'::regclass").fetchone()
        assert (days, parts[0]) == (8, 11)  # the window's days and today; and 3 days ahead
        # the window's ids, each in the daily partition of its partition's last day (or today)
        assert c.execute("SELECT seen_on, count(*) FROM tally.event_ids GROUP BY 1 ORDER BY 1").fetchall() == [
            (today - timedelta(days=1), 7),
            (today, 1),
        ]
    replays()


def test_0006_downgrade_refuses_counters_of_another_time_zone(fresh_db: str) -> None:
    """Revision 0005 cuts every bucket in UTC: a downgrade while a counter
    has another zone is refused with the counters named, and changes
    nothing; once they are dropped it goes through, the UTC counters kept."""
    alembic(fresh_db, "upgrade", "head")
    with psycopg.connect(fresh_db, autocommit=True) as c:
        c.execute("SELECT tally.create_counter('utc_one')")
        c.execute("SELECT tally.create_counter('ny_one', p_time_zone => 'America/New_York')")
        c.execute("SELECT tally.increment_counter('ny_one', 'k')")
    with pytest.raises(subprocess.CalledProcessError) as refused:
        alembic(fresh_db, "downgrade", "0005")
    assert b"counters with a time zone other than UTC: ny_one (America/New_York)" in refused.value.stderr
    with psycopg.connect(fresh_db, autocommit=True) as c:
        assert c.execute("SELECT version_num FROM tally.alembic_version").fetchone() == ("0006",)
        assert c.execute("SELECT tally.counter_value('ny_one', 'k')").fetchone() == (1,)
        c.execute("SELECT tally.drop_counter('ny_one')")
    alembic(fresh_db, "downgrade", "0005")
    with psycopg.connect(fresh_db, autocommit=True) as c:
        assert c.execute("SELECT name FROM tally.counters").fetchall() == [("utc_one",)]
