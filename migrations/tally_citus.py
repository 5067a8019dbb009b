"""tally on Citus: distributed mode, chosen by the migration.

When the target database has the citus extension and at least one active
worker, revision 0004 distributes tally (docs/scale-out.md):

- reference tables (a copy on every node, read locally by the per-key
  functions that run on a worker): counters, granularities, settings,
  write_gen, event_days, retention, coverage, sources, drift_checks,
  drift_runs, corrections;
- distributed by key, all in one colocation group (shard i of each holds
  the same keys, on the same worker): delta (and its partitions), totals,
  the five rollups (pg_partman's partitions, made later, are distributed
  automatically), event_ids, quarantine and crash_marker (one UNLOGGED row
  per shard: a worker's crash reset shows as its shards' missing rows);
- on the coordinator only: the compactor's own bookkeeping (fold_runs,
  fold_stats, shards, shard_slices, crash_resets) and the
  install records;
- the per-key functions (increment_counter, counter_value, counter_series)
  delegated to the worker that holds p_key; every other tally function is
  created on every node.

The choice: `-x distributed=on|off|auto` on the alembic command line, or
TALLY_DISTRIBUTED; auto (the default) distributes exactly when Citus has
workers. `on` without them is an error; `off` on a Citus coordinator keeps
tally a plain, coordinator-local install. TALLY_CITUS_SHARD_COUNT (default
32, Citus's own default) sets the shard count of the colocation group.
"""

from __future__ import annotations

import os

import psycopg
import tally_code

REFERENCE = (
    "granularities",
    "counters",
    "settings",
    "write_gen",
    "event_days",
    "retention",
    "coverage",
    "sources",
    "drift_checks",
    "drift_runs",
    "corrections",
)
# delta first: it makes the colocation group the others join.
DISTRIBUTED = (
    "delta",
    "crash_marker",
    "totals",
    "rollup_minute",
    "rollup_hour",
    "rollup_day",
    "rollup_week",
    "rollup_month",
    "event_ids",
    "quarantine",
)
DELEGATED = {
    "tally.increment_counter(text, text, bigint, timestamptz, text)": "p_key",
    "tally.counter_value(text, text)": "p_key",
    "tally.counter_series(text, text, text, timestamptz, timestamptz)": "p_key",
}


def _setting() -> str:
    from alembic import context

    value = context.get_x_argument(as_dictionary=True).get("distributed") or os.environ.get("TALLY_DISTRIBUTED")
    value = (value or "auto").strip().lower()
    if value not in ("on", "off", "auto"):
        raise SystemExit(f"tally migrations: distributed={value!r} is not one of on, off, auto")
    return value


def workers() -> int | None:
    """Active Citus workers of the target database; None without Citus."""
    conn = tally_code.raw()
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone() is None:
        return None
    return conn.execute(
        "SELECT count(*) FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary' AND isactive"
    ).fetchone()[0]


def wanted() -> bool:
    """Whether this migration distributes tally (see the module's doc)."""
    setting = _setting()
    if setting == "off":
        return False
    n = workers()
    if setting == "on" and not n:
        raise SystemExit(
            "tally migrations: distributed=on, but "
            + ("the citus extension is not installed" if n is None else "Citus has no active worker")
            + " in the target database; add workers (citus_add_node) or use distributed=auto"
        )
    return bool(n)


def is_distributed() -> bool:
    conn = tally_code.raw()
    return bool(conn.execute("SELECT distributed FROM tally.settings").fetchone()[0])


def distribute() -> None:
    """Distribute an installed tally (run by revision 0004's upgrade)."""
    ex = tally_code.execute
    conn = tally_code.raw()
    shards = int(os.environ.get("TALLY_CITUS_SHARD_COUNT", "32"))
    if conn.execute("SELECT EXISTS (SELECT FROM tally.event_ids WHERE key IS NULL)").fetchone()[0]:
        raise SystemExit(
            "tally migrations: event ids claimed by a single-node install have no key and cannot be "
            "distributed; wait out the idempotency window (tally.set_event_window) or distribute a fresh install"
        )
    ex("SET LOCAL client_min_messages = warning")
    # Foreign keys among the reference tables: dropped while they become
    # reference tables, then made again (Citus converts tables one by one).
    fks = conn.execute(
        """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE contype = 'f' AND connamespace = 'tally'::regnamespace
          AND conrelid = ANY (%s::regclass[])
        ORDER BY 1, 2
        """,
        ([f"tally.{t}" for t in REFERENCE],),
    ).fetchall()
    for rel, name, _ in fks:
        ex(f'ALTER TABLE {rel} DROP CONSTRAINT "{name}"')
    for t in REFERENCE:
        ex(f"SELECT create_reference_table('tally.{t}')")
    for rel, name, definition in fks:
        ex(f'ALTER TABLE {rel} ADD CONSTRAINT "{name}" {definition}')
    # A distributed table's unique keys include the distribution column.
    ex(
        "ALTER TABLE tally.quarantine DROP CONSTRAINT quarantine_pkey,"
        " ADD CONSTRAINT quarantine_pkey PRIMARY KEY (key, id)"
    )
    ex(
        "ALTER TABLE tally.event_ids ALTER COLUMN key SET NOT NULL, DROP CONSTRAINT event_ids_pkey,"
        " ADD CONSTRAINT event_ids_pkey PRIMARY KEY (counter_id, key, event_id, seen_on)"
    )
    # The crash marker: one UNLOGGED row per shard, beside the deltas. A
    # worker's crash reset empties its fast shards and its markers with
    # them (tally._detect_crash_reset's Citus body).
    ex("DELETE FROM tally.crash_marker")
    ex(
        "ALTER TABLE tally.crash_marker DROP CONSTRAINT crash_marker_pkey,"
        " DROP CONSTRAINT crash_marker_singleton_check, DROP COLUMN singleton,"
        " ADD COLUMN key text NOT NULL, ADD COLUMN shardid bigint NOT NULL,"
        " ADD CONSTRAINT crash_marker_pkey PRIMARY KEY (key)"
    )
    ex(f"SELECT create_distributed_table('tally.delta', 'key', shard_count => {shards})")
    for t in DISTRIBUTED[1:]:
        ex(f"SELECT create_distributed_table('tally.{t}', 'key', colocate_with => 'tally.delta')")
    for t in REFERENCE + DISTRIBUTED:
        ex(f"SELECT truncate_local_data_after_distributing_table('tally.{t}')")
    ex("UPDATE tally.settings SET distributed = true")
    distribute_functions()
    # (the code installed now is revision 0004's, run by its upgrade: the
    # function was renamed _mark_citus_shards by 0006)
    ex(
        "SELECT tally._mark_citus_shards()"
        if conn.execute("SELECT to_regprocedure('tally._mark_citus_shards()') IS NOT NULL").fetchone()[0]
        else "SELECT tally._mark_shards()"
    )
    # (as sql/grants.sql does on a distributed install, from now on)
    ex("GRANT SELECT ON ALL TABLES IN SCHEMA tally TO tally_reader")


def distribute_functions() -> None:
    """Put tally's functions on every node, the per-key ones delegated to
    their key's worker: after distribute(), and after a later revision made
    the code again (tally_code.apply_code) on a distributed install."""
    ex = tally_code.execute
    conn = tally_code.raw()
    # Every function on every node (Citus makes the ones that depend only
    # on distributed objects there already); the per-key ones delegated.
    for (fn,) in conn.execute(
        """
        SELECT p.oid::regprocedure::text
        FROM pg_proc AS p
        WHERE p.pronamespace = 'tally'::regnamespace AND p.prokind = 'f'
          AND NOT EXISTS (SELECT FROM pg_dist_object AS o WHERE o.classid = 'pg_proc'::regclass AND o.objid = p.oid)
        ORDER BY 1
        """
    ).fetchall():
        # One that depends on a coordinator-only table (the compactor's
        # bookkeeping) stays on the coordinator, where it runs.
        try:
            with conn.transaction():
                conn.execute(f"SELECT create_distributed_function('{fn}')")
        except psycopg.errors.FeatureNotSupported:
            pass
    for fn, arg in DELEGATED.items():
        ex(f"SELECT create_distributed_function('{fn}', '{arg}', colocate_with => 'tally.delta')")
