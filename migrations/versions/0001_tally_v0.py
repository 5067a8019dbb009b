"""tally v0: counters, delta shards, partitioned rollups, totals, fold runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import tally_code

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Delta shards per durability; a writer picks one by backend pid.
SHARDS = 8

# granularity -> (pg_partman partition interval, ordinal)
GRANULARITIES = {
    "minute": ("1 day", 1),
    "hour": ("1 month", 2),
    "day": ("1 year", 3),
    "week": ("1 year", 4),
    "month": ("1 year", 5),
}

EXTENSIONS = (("plpython3u", None), ("pg_partman", "partman"))


def upgrade() -> None:
    ex = tally_code.execute
    ex("CREATE SCHEMA tally")
    ex("COMMENT ON SCHEMA tally IS 'tally: exact counters and time-bucketed rollups'")
    ex(
        """
        CREATE TABLE tally.installed_extensions (
            extname text PRIMARY KEY,
            created_by_tally boolean NOT NULL
        )
        """
    )
    for name, schema in EXTENSIONS:
        ex(
            f"""
            INSERT INTO tally.installed_extensions (extname, created_by_tally)
            SELECT '{name}', NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = '{name}')
            """
        )
        if schema:
            ex(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            ex(f"CREATE EXTENSION IF NOT EXISTS {name} SCHEMA {schema}")
        else:
            ex(f"CREATE EXTENSION IF NOT EXISTS {name}")

    ex(
        """
        CREATE TABLE tally.granularities (
            name text PRIMARY KEY,
            ord smallint NOT NULL UNIQUE,
            partition_interval interval NOT NULL
        )
        """
    )
    for name, (interval, ord_) in GRANULARITIES.items():
        ex(f"INSERT INTO tally.granularities VALUES ('{name}', {ord_}, '{interval}')")

    ex(
        """
        CREATE TABLE tally.counters (
            id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name text NOT NULL UNIQUE,
            granularities text[] NOT NULL,
            durable boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    ex("COMMENT ON TABLE tally.counters IS 'One row per counter: its buckets and durability'")

    # Deltas: one partitioned parent, list-partitioned by shard. Shards
    # 0..7 are UNLOGGED (fast counters), 8..15 are logged (durable counters).
    ex(
        """
        CREATE TABLE tally.delta (
            shard smallint NOT NULL,
            counter_id integer NOT NULL,
            key text NOT NULL,
            delta bigint NOT NULL,
            at timestamptz NOT NULL,
            written_at timestamptz NOT NULL DEFAULT now()
        ) PARTITION BY LIST (shard)
        """
    )
    for i in range(SHARDS):
        ex(f"CREATE UNLOGGED TABLE tally.delta_fast_{i} PARTITION OF tally.delta FOR VALUES IN ({i})")
        ex(f"CREATE TABLE tally.delta_durable_{i} PARTITION OF tally.delta FOR VALUES IN ({SHARDS + i})")
    ex("CREATE INDEX delta_counter_key_idx ON tally.delta (counter_id, key)")
    ex("COMMENT ON TABLE tally.delta IS 'Not-yet-folded increments, appended by increment_counter()'")

    # Scratch space of the fold in progress (folds are serialized): the
    # moved deltas pre-aggregated per (counter, key, minute), the finest
    # bucket every coarser one is a union of.
    ex(
        """
        CREATE UNLOGGED TABLE tally.fold_batch (
            counter_id integer NOT NULL,
            key text NOT NULL,
            minute timestamptz NOT NULL,
            delta bigint NOT NULL,
            n bigint NOT NULL
        )
        """
    )

    ex(
        """
        CREATE TABLE tally.totals (
            counter_id integer NOT NULL,
            key text NOT NULL,
            value bigint NOT NULL,
            PRIMARY KEY (counter_id, key)
        ) WITH (fillfactor = 70)
        """
    )
    for name, (interval, _) in GRANULARITIES.items():
        ex(
            f"""
            CREATE TABLE tally.rollup_{name} (
                counter_id integer NOT NULL,
                key text NOT NULL,
                bucket timestamptz NOT NULL,
                value bigint NOT NULL,
                PRIMARY KEY (counter_id, key, bucket)
            ) PARTITION BY RANGE (bucket)
            """
        )
        ex(f"CREATE INDEX rollup_{name}_bucket_idx ON tally.rollup_{name} (counter_id, bucket)")
        # pg_partman aligns partitions to the session time zone: make it UTC.
        ex("SET LOCAL timezone = 'UTC'")
        ex(
            f"""
            SELECT partman.create_parent(
                p_parent_table => 'tally.rollup_{name}', p_control => 'bucket',
                p_type => 'native', p_interval => '{interval}', p_premake => 2,
                p_jobmon => false)
            """
        )
        # Nothing may land silently in a default partition: buckets outside
        # the premade range get their partition created by the fold.
        ex(f"DROP TABLE tally.rollup_{name}_default")
        ex(f"UPDATE partman.part_config SET inherit_privileges = true WHERE parent_table = 'tally.rollup_{name}'")

    ex(
        """
        CREATE TABLE tally.fold_runs (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            started_at timestamptz NOT NULL,
            finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            deltas bigint NOT NULL DEFAULT 0,
            attempts integer NOT NULL DEFAULT 1,
            outcome text NOT NULL CHECK (outcome IN ('ok', 'failed')),
            error text
        )
        """
    )
    ex("CREATE INDEX fold_runs_started_at_idx ON tally.fold_runs (started_at)")

    tally_code.apply_code()


def downgrade() -> None:
    ex = tally_code.execute
    conn = tally_code.raw()
    ours = [
        r[0]
        for r in conn.execute(
            "SELECT extname FROM tally.installed_extensions WHERE created_by_tally ORDER BY extname DESC"
        ).fetchall()
    ]
    templates = [
        r[0]
        for r in conn.execute(
            "SELECT template_table FROM partman.part_config"
            " WHERE parent_table LIKE 'tally.%' AND template_table IS NOT NULL"
        ).fetchall()
    ]
    ex("DELETE FROM partman.part_config WHERE parent_table LIKE 'tally.%'")
    for template in templates:
        ex(f"DROP TABLE IF EXISTS {template}")
    ex("DROP SCHEMA tally CASCADE")
    for name, schema in EXTENSIONS:
        if name in ours:
            ex(f"DROP EXTENSION {name}")
            if schema:
                ex(f"DROP SCHEMA IF EXISTS {schema}")
