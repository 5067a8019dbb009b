"""alembic: upgrade head installs everything, downgrade base removes it
without a trace (alembic's own, then empty, alembic_version table aside),
and upgrade head works again."""

from __future__ import annotations

import psycopg
import pytest
from conftest import alembic
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DB = "tally_migrate_roundtrip"

SNAPSHOT = """
SELECT 'schema ' || nspname FROM pg_namespace
 WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
UNION ALL SELECT 'extension ' || extname FROM pg_extension
UNION ALL SELECT 'relation ' || n.nspname || '.' || c.relname FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\\_temp%'
   AND n.nspname NOT LIKE 'pg\\_toast%' AND c.relname NOT LIKE 'alembic\\_version%'
UNION ALL SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL SELECT 'type ' || t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND t.typname NOT LIKE '%alembic\\_version'
ORDER BY 1
"""


@pytest.fixture
def fresh_db(admin_dsn: str):
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {DB}")
    yield make_conninfo(**{**conninfo_to_dict(admin_dsn), "dbname": DB})
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


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

    alembic(fresh_db, "downgrade", "base")
    assert snapshot(fresh_db) == before

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
