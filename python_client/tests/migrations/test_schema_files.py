"""sql/schema/ states the tables of schema tally as the migrations leave them:
one file per table (partitions and tally.alembic_version aside), and the files,
executed in name order into an empty schema tally, make tables equal to a
migrated database's in every column, constraint, index, persistence,
partition key, storage option and comment."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from conftest import REPO
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SCHEMA_DIR = REPO / "sql" / "schema"
SCRATCH = "tally_schema_files"

# A file creates its table with this statement; its name is NN_<table>.sql.
CREATE_TABLE = re.compile(r"^\s*CREATE\s+(?:UNLOGGED\s+)?TABLE\s+tally\.(\w+)\b", re.IGNORECASE | re.MULTILINE)
FILE_NAME = re.compile(r"^(\d{2})_(\w+)\.sql$")

# The tables the files must declare: every table of schema tally that is not
# a partition (pg_partman's template tables live in schema partman), except
# the version table alembic owns.
TABLES = """
SELECT c.relname FROM pg_catalog.pg_class AS c
WHERE c.relnamespace = 'tally'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND c.relname <> 'alembic_version'
ORDER BY 1
"""
RELATION = """
SELECT c.relkind::text, c.relpersistence::text, pg_get_partkeydef(c.oid), c.reloptions,
       obj_description(c.oid, 'pg_class')
FROM pg_catalog.pg_class AS c WHERE c.oid = %(rel)s::regclass
"""
# In column order: a file that swaps two columns makes another table.
COLUMNS = """
SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid),
       a.attidentity::text, a.attgenerated::text, a.attcollation::regcollation::text,
       col_description(a.attrelid, a.attnum)
FROM pg_catalog.pg_attribute AS a
LEFT JOIN pg_catalog.pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %(rel)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
# The sequences behind identity columns, with their options.
IDENTITY_SEQUENCES = """
SELECT s.seqrelid::regclass::text, a.attname::text, s.seqtypid::regtype::text, s.seqstart, s.seqincrement,
       s.seqmin, s.seqmax, s.seqcache, s.seqcycle
FROM pg_catalog.pg_depend AS dep
JOIN pg_catalog.pg_sequence AS s ON s.seqrelid = dep.objid
JOIN pg_catalog.pg_attribute AS a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid
WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass
  AND dep.refobjid = %(rel)s::regclass AND dep.deptype = 'i'
ORDER BY 1
"""
CONSTRAINTS = """
SELECT r.conname::text, r.contype::text, pg_get_constraintdef(r.oid)
FROM pg_catalog.pg_constraint AS r WHERE r.conrelid = %(rel)s::regclass
ORDER BY 1
"""
INDEXES = """
SELECT pg_get_indexdef(i.indexrelid)
FROM pg_catalog.pg_index AS i WHERE i.indrelid = %(rel)s::regclass
ORDER BY 1
"""


def schema_files() -> list[Path]:
    return sorted(SCHEMA_DIR.glob("*.sql"))


def tables(c: psycopg.Connection) -> list[str]:
    return [r[0] for r in c.execute(TABLES)]


def describe(dsn: str) -> dict[str, dict[str, list[tuple]]]:
    """Per table of schema tally (see TABLES): what the files must say. The
    search_path is pg_catalog alone, so every name of tally in a default,
    constraint or index definition comes out qualified, `tally.`, in both
    databases alike."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SET search_path = pg_catalog")
        out: dict[str, dict[str, list[tuple]]] = {}
        for name in tables(c):
            rel = {"rel": f"tally.{name}"}
            out[name] = {
                what: [tuple(r) for r in c.execute(query, rel)]
                for what, query in (
                    ("relation", RELATION),
                    ("columns", COLUMNS),
                    ("identity sequences", IDENTITY_SEQUENCES),
                    ("constraints", CONSTRAINTS),
                    ("indexes", INDEXES),
                )
            }
        return out


@pytest.fixture
def scratch_dsn(admin_dsn: str):
    """A database holding only what sql/schema/ makes: schema tally, then
    every file in name order, each in one transaction."""
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {SCRATCH}")
    dsn = make_conninfo(**{**conninfo_to_dict(admin_dsn), "dbname": SCRATCH})
    try:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE SCHEMA tally")
            for path in schema_files():
                with c.transaction():
                    try:
                        c.execute(path.read_text())
                    except psycopg.Error as exc:
                        pytest.fail(f"{path.relative_to(REPO)} does not execute after the files before it: {exc}")
        yield dsn
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {SCRATCH} WITH (FORCE)")


def test_every_table_has_exactly_one_file_named_after_it(conn: psycopg.Connection) -> None:
    migrated = tables(conn)
    # The query sees the parents and leaves partitions and the version table out.
    assert {"counters", "delta", "rollup_minute", "event_ids"} <= set(migrated), migrated
    assert not {"delta_g0_fast_0", "alembic_version"} & set(migrated), migrated
    made: dict[str, list[str]] = {}
    for path in schema_files():
        m = FILE_NAME.match(path.name)
        assert m, f"sql/schema/{path.name}: name it NN_<table>.sql"
        text = path.read_text()
        created = CREATE_TABLE.findall(text)
        assert created == [m.group(2)], f"sql/schema/{path.name} must create exactly tally.{m.group(2)}: {created}"
        above = text[: CREATE_TABLE.search(text).start()].strip().splitlines()
        assert above and above[-1].startswith("--"), f"sql/schema/{path.name}: say above the table what it is for"
        made.setdefault(created[0], []).append(path.name)
    twice = {t: f for t, f in made.items() if len(f) > 1}
    assert not twice, f"tables declared by more than one file: {twice}"
    missing, extra = sorted(set(migrated) - set(made)), sorted(set(made) - set(migrated))
    assert sorted(made) == migrated, f"no file for: {missing}; a file but no such table: {extra}"
    numbers = [FILE_NAME.match(p.name).group(1) for p in schema_files()]
    assert len(set(numbers)) == len(numbers), f"two files share a number: {numbers}"


def test_the_files_make_the_tables_the_migrations_make(dsn: str, scratch_dsn: str) -> None:
    migrated = describe(dsn)
    declared = describe(scratch_dsn)
    assert sorted(declared) == sorted(migrated)
    for table, facts in migrated.items():
        for what, rows in facts.items():
            where = f"tally.{table}, {what}: sql/schema/ (left) is not what the migrations make (right)"
            assert declared[table][what] == rows, where
    # The comparison sees what it is meant to see.
    assert migrated["delta"]["relation"] == [
        ("p", "p", "LIST (shard)", None, "Not-yet-folded increments, appended by increment_counter()")
    ]
    assert migrated["totals"]["relation"][0][3] == ["fillfactor=70", "autovacuum_vacuum_scale_factor=0.02"]
    assert migrated["crash_marker"]["relation"][0][1] == "u"
    assert ("shards_layout_key", "u", "UNIQUE (gen, durable, slot)") in migrated["shards"]["constraints"]
    assert (
        "retention_counter_id_fkey",
        "f",
        "FOREIGN KEY (counter_id) REFERENCES tally.counters(id) ON DELETE CASCADE",
    ) in migrated["retention"]["constraints"]
    assert migrated["rollup_hour"]["indexes"] == [
        ("CREATE INDEX rollup_hour_bucket_idx ON ONLY tally.rollup_hour USING btree (counter_id, bucket)",),
        ("CREATE UNIQUE INDEX rollup_hour_pkey ON ONLY tally.rollup_hour USING btree (counter_id, key, bucket)",),
    ]
    assert migrated["counters"]["identity sequences"] == [
        ("tally.counters_id_seq", "id", "integer", 1, 1, 1, 2147483647, 1, False)
    ]
