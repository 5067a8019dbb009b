"""The compactor never stops: poison set aside per fold chunk, every compactor
and maintenance failure recorded (fold_runs modes 'quarantine' and
'maintenance'), crash resets acknowledged (tally.acknowledge_crash), and
internal functions executable only by tally's own definer functions
(tally.compact_step; tally.maintain, check_drift and reconcile as definers;
a source of truth runs in a function owned by its registrant); the shard
layout recorded once in tally.shards (shard, gen, durable, slot), checked
against tally._shard_no(); parallel folds: key slices folded at once by
several compactors (tally.shard_slices keeps each slice's place in a shard
and the last transaction that deleted from it; tally.fold_runs records the
slice), the fold's scratch table per session (a temporary table) instead
of the shared tally.fold_batch.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import tally_code

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ex = tally_code.execute
    ex("ALTER TABLE tally.fold_runs DROP CONSTRAINT fold_runs_mode_check")
    ex(
        "ALTER TABLE tally.fold_runs ADD CONSTRAINT fold_runs_mode_check"
        " CHECK (mode IN ('truncate', 'delete', 'quarantine', 'maintenance'))"
    )
    ex("ALTER TABLE tally.crash_resets ADD COLUMN acknowledged_at timestamptz, ADD COLUMN acknowledged_by name")
    ex(
        "ALTER TABLE tally.shards ADD COLUMN shard smallint, ADD COLUMN gen smallint, ADD COLUMN durable boolean,"
        " ADD COLUMN slot smallint"
    )
    ex("ALTER TABLE tally.fold_runs ADD COLUMN slice smallint, ADD COLUMN slices smallint")
    # Per generation g (element g + 1): the flip that found it empty while
    # inactive and made it active. Once both are past the flip count a
    # compactor call began at, everything written before the call is
    # folded, whichever compactor flipped (several fold at once).
    ex("ALTER TABLE tally.write_gen ADD COLUMN emptied_at_flip bigint[] NOT NULL DEFAULT '{0,0}'")
    # Per delta shard and key slice (slice of slices, tally._slice): where
    # the slice's last chunk stopped, and the last transaction that deleted
    # deltas of the slice from the shard. Slice folds write only their own
    # row, so folds of different slices never wait on each other here; the
    # reclaim truncates a shard only once every such transaction is
    # invisible to all (tally._reclaim_shards).
    ex(
        """
        CREATE TABLE tally.shard_slices (
            shard_table regclass NOT NULL REFERENCES tally.shards (shard_table) ON DELETE CASCADE,
            slices smallint NOT NULL CHECK (slices BETWEEN 2 AND 64),
            slice smallint NOT NULL CHECK (slice >= 0 AND slice < slices),
            resume_at tid NOT NULL DEFAULT '(0,0)',
            deleted_xid xid8 NOT NULL,
            PRIMARY KEY (shard_table, slices, slice)
        )
        """
    )
    # Folds of different slices run at once: each session folds through its
    # own temporary scratch table (tally._fold_chunk), not a shared one.
    ex("DROP TABLE tally.fold_batch")
    grants = tally_code.granted()
    tally_code.drop_code("0002")
    tally_code.apply_code()
    tally_code.regrant(grants)
    # The shard layout, once: each partition's (gen, durable, slot) are those
    # whose tally._shard_no() is its list bound; a partition's persistence
    # must say the same (UNLOGGED: fast). The compactor reads these columns.
    ex(
        r"""
        UPDATE tally.shards AS s
        SET shard = b.shard, gen = l.gen, durable = l.durable, slot = l.slot
        FROM (
            SELECT c.oid AS rel, c.relpersistence,
                   (regexp_match(pg_get_expr(c.relpartbound, c.oid), '^FOR VALUES IN \(''?(\d+)''?\)$'))[1]::smallint
                       AS shard
            FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'tally.delta'::regclass
        ) AS b
        JOIN (
            SELECT g::smallint AS gen, d AS durable, sl::smallint AS slot, tally._shard_no(g::smallint, d, sl) AS shard
            FROM generate_series(0, 1) AS g, (VALUES (false), (true)) AS v (d), generate_series(0, 3) AS sl
        ) AS l ON l.shard = b.shard AND l.durable = (b.relpersistence = 'p')
        WHERE s.shard_table = b.rel::regclass
        """
    )
    ex(
        "ALTER TABLE tally.shards ALTER COLUMN shard SET NOT NULL, ALTER COLUMN gen SET NOT NULL,"
        " ALTER COLUMN durable SET NOT NULL, ALTER COLUMN slot SET NOT NULL,"
        " ADD CONSTRAINT shards_shard_key UNIQUE (shard), ADD CONSTRAINT shards_layout_key UNIQUE (gen, durable, slot)"
    )
    # Sources registered before: their query now runs in a function owned by
    # the role that registered it, with that role's default search_path.
    ex(
        """
        SELECT tally._install_source(c, s.query, s.registered_by, coalesce((
            SELECT substr(x.c, 13) FROM pg_catalog.pg_db_role_setting AS d, unnest(d.setconfig) AS x (c)
            WHERE d.setrole IN (0, to_regrole(s.registered_by::text)) AND x.c LIKE 'search_path=%'
            ORDER BY d.setrole DESC, d.setdatabase DESC LIMIT 1), '"$user", public'))
        FROM tally.sources AS s JOIN tally.counters AS c ON c.id = s.counter_id
        ORDER BY c.id
        """
    )


def downgrade() -> None:
    ex = tally_code.execute
    grants = tally_code.granted()
    for (fn,) in (
        tally_code.raw()
        .execute("SELECT format('tally.%I(text)', 'source_' || s.counter_id) FROM tally.sources AS s ORDER BY 1")
        .fetchall()
    ):
        ex(f"DROP FUNCTION IF EXISTS {fn}")
    tally_code.drop_code()
    ex("DROP TABLE tally.shard_slices")
    ex(
        "CREATE UNLOGGED TABLE tally.fold_batch (counter_id integer NOT NULL, key text NOT NULL,"
        " minute timestamptz NOT NULL, delta bigint NOT NULL, n bigint NOT NULL)"
    )
    ex("ALTER TABLE tally.fold_runs DROP COLUMN slice, DROP COLUMN slices")
    ex("ALTER TABLE tally.write_gen DROP COLUMN emptied_at_flip")
    ex("DELETE FROM tally.fold_runs WHERE mode IN ('quarantine', 'maintenance')")
    ex("ALTER TABLE tally.fold_runs DROP CONSTRAINT fold_runs_mode_check")
    ex("ALTER TABLE tally.fold_runs ADD CONSTRAINT fold_runs_mode_check CHECK (mode IN ('truncate', 'delete'))")
    ex("ALTER TABLE tally.crash_resets DROP COLUMN acknowledged_at, DROP COLUMN acknowledged_by")
    ex("ALTER TABLE tally.shards DROP COLUMN shard, DROP COLUMN gen, DROP COLUMN durable, DROP COLUMN slot")
    tally_code.apply_code("0002")
    tally_code.regrant(grants)
    # 0002 creates the event-id partitions after its grants ran: they carry no
    # grant of tally_admin's there (reads go through the parent).
    for (part,) in (
        tally_code.raw()
        .execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'tally.event_ids'::regclass ORDER BY 1"
        )
        .fetchall()
    ):
        ex(f"REVOKE ALL ON {part} FROM tally_admin")
