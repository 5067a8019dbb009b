"""The compactor never stops: poison set aside per fold chunk, every compactor
and maintenance failure recorded (fold_runs modes 'quarantine' and
'maintenance'), crash resets acknowledged (tally.acknowledge_crash), and
internal functions executable only by tally's own definer functions
(tally.compact_step; tally.maintain, check_drift and reconcile as definers;
a source of truth runs in a function owned by its registrant); the shard
layout recorded once in tally.shards (shard, gen, durable, slot), checked
against tally._shard_no().

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
