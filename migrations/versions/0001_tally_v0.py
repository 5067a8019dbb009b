"""tally v0: counters, delta shards, partitioned rollups, totals, fold runs,
retention, and pg_cron where the database allows it.

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

# Delta shards: two generations (writers append to the active one, the
# compactor drains and TRUNCATEs the other), and per generation 4 UNLOGGED
# shards for fast counters and 4 logged shards for durable counters:
# shard = gen * 8 + (durable ? 4 : 0) + slot, where slot is pid % 3 for
# increments and small batches (per-worker shards) and 3 for bulk batches
# (over 1,000 increments), so a backfill never queues live increments.
WORKER_SHARDS = 4

# granularity -> (pg_partman partition interval, ordinal)
GRANULARITIES = {
    "minute": ("1 day", 1),
    "hour": ("1 month", 2),
    "day": ("1 year", 3),
    "week": ("1 year", 4),
    "month": ("1 year", 5),
}

EXTENSIONS = (("plpython3u", None), ("pg_partman", "partman"))

DEFAULT_RETENTION = {"minute": "7 days", "hour": "90 days"}

# Rollup rows are updated in place by every fold: leave room on each page so
# the update stays on the page (HOT; `value` is in no index) and let
# autovacuum come early. pg_partman copies the template's options to new
# partitions.
ROLLUP_RELOPTIONS = "fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.05"
# Delta shards are normally TRUNCATEd; when a fold has to DELETE instead
# (a backlog over p_max_deltas, a long transaction holding a shard), vacuum
# them promptly.
SHARD_RELOPTIONS = (
    "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000, "
    "autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000000, "
    "autovacuum_vacuum_cost_delay = 0"
)


def upgrade() -> None:
    ex = tally_code.execute
    conn = tally_code.raw()
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
            partition_interval interval NOT NULL,
            default_retention interval
        )
        """
    )
    for name, (interval, ord_) in GRANULARITIES.items():
        keep = DEFAULT_RETENTION.get(name)
        keep_sql = f"'{keep}'" if keep else "NULL"
        ex(f"INSERT INTO tally.granularities VALUES ('{name}', {ord_}, '{interval}', {keep_sql})")

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
    ex(
        """
        CREATE TABLE tally.retention (
            counter_id integer NOT NULL REFERENCES tally.counters (id) ON DELETE CASCADE,
            granularity text NOT NULL REFERENCES tally.granularities (name),
            keep interval,
            PRIMARY KEY (counter_id, granularity)
        )
        """
    )
    ex("COMMENT ON TABLE tally.retention IS 'Per-counter retention overrides; keep NULL = keep forever'")
    # From when a counter's buckets of a granularity are complete: moved
    # forward when its retention changes (buckets skipped or dropped under
    # the old retention do not come back when it is lengthened).
    ex(
        """
        CREATE TABLE tally.coverage (
            counter_id integer NOT NULL REFERENCES tally.counters (id) ON DELETE CASCADE,
            granularity text NOT NULL REFERENCES tally.granularities (name),
            complete_from timestamptz NOT NULL,
            PRIMARY KEY (counter_id, granularity)
        )
        """
    )

    # Deltas: one partitioned parent, list-partitioned by shard.
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
    for gen in (0, 1):
        for i in range(WORKER_SHARDS):
            fast = gen * 8 + i
            durable = gen * 8 + 4 + i
            ex(f"CREATE UNLOGGED TABLE tally.delta_g{gen}_fast_{i} PARTITION OF tally.delta FOR VALUES IN ({fast})")
            ex(f"CREATE TABLE tally.delta_g{gen}_durable_{i} PARTITION OF tally.delta FOR VALUES IN ({durable})")
            for kind in ("fast", "durable"):
                ex(f"ALTER TABLE tally.delta_g{gen}_{kind}_{i} SET ({SHARD_RELOPTIONS})")
    # The generation writers append to; the compactor flips it once the
    # other generation is drained.
    ex(
        """
        CREATE TABLE tally.write_gen (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            gen smallint NOT NULL CHECK (gen IN (0, 1)),
            flips bigint NOT NULL DEFAULT 0,
            flipped_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    ex("INSERT INTO tally.write_gen (gen) VALUES (0)")
    # Per shard: the transaction that last drained it. Once every snapshot
    # in the cluster is newer than that, the shard's dead rows are invisible
    # to all and the shard can be TRUNCATEd without anyone noticing.
    ex(
        """
        CREATE TABLE tally.shards (
            shard_table regclass PRIMARY KEY,
            drained_xid xid8,
            drained_at timestamptz,
            resume_at tid NOT NULL DEFAULT '(0,0)',
            truncated_at timestamptz
        )
        """
    )
    ex(
        """
        INSERT INTO tally.shards (shard_table)
        SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'tally.delta'::regclass
        """
    )
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
        ) WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.02)
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
        ex(
            "UPDATE partman.part_config SET inherit_privileges = true, retention_keep_table = false,"
            f" retention_keep_index = false WHERE parent_table = 'tally.rollup_{name}'"
        )
        template = conn.execute(
            "SELECT template_table FROM partman.part_config WHERE parent_table = %s", (f"tally.rollup_{name}",)
        ).fetchone()[0]
        ex(f"ALTER TABLE {template} SET ({ROLLUP_RELOPTIONS})")
        for (child,) in conn.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass",
            (f"tally.rollup_{name}",),
        ).fetchall():
            ex(f"ALTER TABLE {child} SET ({ROLLUP_RELOPTIONS})")

    ex(
        """
        CREATE TABLE tally.fold_runs (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            started_at timestamptz NOT NULL,
            finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            deltas bigint NOT NULL DEFAULT 0,
            attempts integer NOT NULL DEFAULT 1,
            outcome text NOT NULL CHECK (outcome IN ('ok', 'retried', 'failed')),
            shard text,
            mode text CHECK (mode IN ('truncate', 'delete')),
            error text
        )
        """
    )
    ex("CREATE INDEX fold_runs_started_at_idx ON tally.fold_runs (started_at)")

    # Observability state: cumulative fold failure counts (fold_runs is
    # pruned), the deadlock baseline at install, drift sources and checks,
    # corrections, crash resets.
    ex(
        """
        CREATE TABLE tally.fold_stats (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            retried_deadlocks bigint NOT NULL DEFAULT 0,
            retried_other bigint NOT NULL DEFAULT 0,
            abandoned bigint NOT NULL DEFAULT 0
        )
        """
    )
    ex("INSERT INTO tally.fold_stats DEFAULT VALUES")
    ex(
        """
        CREATE TABLE tally.install_baseline (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            installed_at timestamptz NOT NULL DEFAULT now(),
            deadlocks bigint NOT NULL,
            stats_reset timestamptz
        )
        """
    )
    ex(
        """
        INSERT INTO tally.install_baseline (deadlocks, stats_reset)
        SELECT d.deadlocks, d.stats_reset FROM pg_stat_database AS d WHERE d.datname = current_database()
        """
    )
    ex(
        """
        CREATE TABLE tally.sources (
            counter_id integer PRIMARY KEY REFERENCES tally.counters (id) ON DELETE CASCADE,
            query text NOT NULL,
            registered_by name NOT NULL DEFAULT current_user,
            registered_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    ex(
        """
        CREATE TABLE tally.drift_checks (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            counter_id integer NOT NULL REFERENCES tally.counters (id) ON DELETE CASCADE,
            checked_at timestamptz NOT NULL DEFAULT now(),
            key text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('internal', 'source')),
            detail text NOT NULL,
            expected bigint,
            actual bigint
        )
        """
    )
    ex("CREATE INDEX drift_checks_counter_idx ON tally.drift_checks (counter_id, checked_at)")
    ex(
        """
        CREATE TABLE tally.drift_runs (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            counter_id integer NOT NULL REFERENCES tally.counters (id) ON DELETE CASCADE,
            checked_at timestamptz NOT NULL DEFAULT now(),
            keys_checked integer NOT NULL,
            inconsistent_keys integer NOT NULL,
            drifting_keys integer,
            max_abs_drift bigint
        )
        """
    )
    ex("CREATE INDEX drift_runs_counter_idx ON tally.drift_runs (counter_id, checked_at)")
    ex(
        """
        CREATE TABLE tally.corrections (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            counter_id integer NOT NULL REFERENCES tally.counters (id) ON DELETE CASCADE,
            key text NOT NULL,
            granularity text NOT NULL,
            bucket timestamptz,
            delta bigint NOT NULL,
            reason text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now(),
            applied_by name NOT NULL DEFAULT session_user
        )
        """
    )
    # Deltas set aside because folding them would overflow bigint (poison
    # never wedges the fold).
    ex(
        """
        CREATE TABLE tally.quarantine (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            counter_id integer NOT NULL,
            key text NOT NULL,
            delta bigint NOT NULL,
            at timestamptz NOT NULL,
            written_at timestamptz NOT NULL,
            quarantined_at timestamptz NOT NULL DEFAULT now(),
            reason text NOT NULL
        )
        """
    )
    # A crash empties UNLOGGED tables: this one-row marker disappears with
    # them, which is how a crash reset (lost fast deltas) is detected.
    ex("CREATE UNLOGGED TABLE tally.crash_marker (singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton))")
    ex("INSERT INTO tally.crash_marker DEFAULT VALUES")
    ex(
        """
        CREATE TABLE tally.crash_resets (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            detected_at timestamptz NOT NULL DEFAULT now(),
            server_started_at timestamptz NOT NULL,
            lost_since timestamptz
        )
        """
    )

    # pg_cron can only live in the database named by cron.database_name:
    # there tally schedules its own compactor (tally.schedule_compactor).
    if conn.execute("SELECT current_setting('cron.database_name', true) = current_database()").fetchone()[0]:
        ex(
            """
            INSERT INTO tally.installed_extensions (extname, created_by_tally)
            SELECT 'pg_cron', NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron')
            """
        )
        ex("CREATE EXTENSION IF NOT EXISTS pg_cron")

    tally_code.apply_code("0001")
    ex("SELECT tally._sync_retention()")


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
    if conn.execute("SELECT to_regclass('cron.job') IS NOT NULL").fetchone()[0]:
        ex("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname IN ('tally-compactor', 'tally-maintenance')")
    ex("DELETE FROM partman.part_config WHERE parent_table LIKE 'tally.%'")
    for template in templates:
        ex(f"DROP TABLE IF EXISTS {template}")
    if not tally_code.distributed(conn):
        # Every table first, in one statement, before the catalogs change: an
        # autovacuum that holds one of them is cancelled by this wait, while
        # one that met DROP SCHEMA's half-done catalog rows would wait on it
        # and deadlock it (seen: ANALYZE of a rollup partition).
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class AS c"
                " JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'tally' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1"
            ).fetchall()
        ]
        if tables:
            ex(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
    ex("DROP SCHEMA tally CASCADE")
    for name, schema in (*EXTENSIONS, ("pg_cron", None)):
        if name in ours:
            ex(f"DROP EXTENSION {name}")
            if schema:
                ex(f"DROP SCHEMA IF EXISTS {schema}")
