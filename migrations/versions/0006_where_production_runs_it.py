"""Where production runs tally: hot standbys, failover, poolers, quarantine.

- Reads on a hot standby: the read functions and views read the logged
  delta shards only there (UNLOGGED shards are not replicated); new reads
  tally.pending_deltas() and tally.node_status(); tally.counter_status
  gains pending_complete, tally.health a 'node' check.
- The loss report of a crash or a promotion: tally.write_gen.folded_before
  (per generation, before when every acknowledged increment is folded),
  tally.crash_resets.lost_until and cause ('crash' or 'promotion').
- Quarantine has a way out: tally.release_quarantined() re-applies or
  discards a key's deltas set aside, recorded in tally.quarantine_releases;
  reads of such a key warn (an index on tally.quarantine serves them).
- The compactor's module is held once, by tally._compactor(); compact and
  compact_loop load it. compact_step puts back the caller's search_path
  and does not retry a cancel.
- One seam per mode: a distributed install gets the Citus bodies of the
  objects that have one (tally.<name>.citus.sql: increment_counter,
  _append_claimed, _fold_step, _detect_crash_reset, node_deadlocks), a
  single node the plain ones; one fold engine (_fold_upserts,
  _overflowing) for both; _counter is _lookup_counter, _mark_shards
  _mark_citus_shards.
- Cheaper claims of event ids: tally.event_ids' new partitions span up to
  7 days (seen_on is a partition's first day), listed in tally.event_days
  (gains next_day; first_xid is NULL until a partition's first day). The
  ids kept move into them; a downgrade puts every id back into the daily
  partition of its partition's last day.
- Days in the user's time zone: tally.counters gains time_zone (UTC for
  every counter there is); create_counter takes p_time_zone, and
  tally.set_time_zone() changes it while a counter has no data. Folds,
  reads and retention cut buckets on that zone's wall clock. A downgrade
  refuses while a counter has another zone than UTC.
- A backlog that keeps growing is named: the compactor samples the
  pending deltas into tally.backlog_samples (at most every 10 s, an hour
  kept), and tally.health's new 'backlog' check warns, with the rates.
- Counters that keep themselves: tally.track_table(),
  tally.track_table_online() and tally.untrack_table() count a table's
  rows with statement triggers (tally._tracked_<counter id>()), listed in
  the new tally.tracked_tables; tally.tracked_log holds what the triggers
  of a table backfilled online appended. The event trigger
  tally_track_ddl follows renames and refuses DDL that would break a
  tracking. A downgrade drops the triggers (the counters stay).
- Writers held back while the compactor is behind, opt-in:
  tally.set_backlog_limits() (new tally.settings columns backlog_delay_at,
  backlog_refuse_at); the admission the compactor's samples set is in
  tally.write_gen (backlog_state, backlog_pending), which every increment
  reads. tally.sample_backlog() is public (tally_admin), called by the
  compactor after each step.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import tally_citus
import tally_code

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _recreate(drop: str | None, apply: str | None) -> None:
    grants = tally_code.granted()
    tally_code.drop_code(drop)
    tally_code.apply_code(apply)
    tally_code.regrant(grants)
    if tally_citus.is_distributed():
        tally_citus.distribute_functions()


def upgrade() -> None:
    ex = tally_code.execute
    ex("ALTER TABLE tally.write_gen ADD COLUMN folded_before timestamptz[] NOT NULL DEFAULT '{NULL,NULL}'")
    # Resets recorded before: a crash, lost up to the server's start.
    ex("ALTER TABLE tally.crash_resets ADD COLUMN lost_until timestamptz, ADD COLUMN cause text")
    ex("UPDATE tally.crash_resets SET lost_until = server_started_at, cause = 'crash'")
    ex(
        "ALTER TABLE tally.crash_resets ALTER COLUMN lost_until SET NOT NULL, ALTER COLUMN cause SET NOT NULL,"
        " ADD CONSTRAINT crash_resets_cause_check CHECK (cause IN ('crash', 'promotion'))"
    )
    ex("CREATE INDEX quarantine_counter_id_key_idx ON tally.quarantine (counter_id, key)")
    ex(
        """
        CREATE TABLE tally.quarantine_releases (
            id bigint GENERATED ALWAYS AS IDENTITY,
            counter_id integer NOT NULL,
            key text NOT NULL,
            action text NOT NULL,
            deltas bigint NOT NULL,
            delta_sum numeric NOT NULL,
            released_at timestamptz NOT NULL DEFAULT now(),
            released_by name NOT NULL DEFAULT session_user,
            CONSTRAINT quarantine_releases_pkey PRIMARY KEY (id),
            CONSTRAINT quarantine_releases_action_check CHECK (action IN ('apply', 'discard'))
        )
        """
    )
    # (one subcommand per statement: Citus refuses more on a reference table)
    ex("ALTER TABLE tally.event_days ADD COLUMN next_day date")
    ex("ALTER TABLE tally.event_days ALTER COLUMN first_xid DROP NOT NULL")
    ex("UPDATE tally.event_days SET next_day = day + 1")
    ex("ALTER TABLE tally.event_days ALTER COLUMN next_day SET NOT NULL")
    ex("ALTER TABLE tally.event_days ADD CONSTRAINT event_days_next_day_check CHECK (next_day > day)")
    ex(f"COMMENT ON TABLE tally.event_ids IS '{EVENT_IDS_COMMENT}'")
    ex("ALTER TABLE tally.counters ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC'")
    ex(
        """
        CREATE TABLE tally.backlog_samples (
            sampled_at timestamptz NOT NULL,
            pending bigint NOT NULL,
            CONSTRAINT backlog_samples_pkey PRIMARY KEY (sampled_at)
        )
        """
    )
    ex("COMMENT ON TABLE tally.backlog_samples IS 'tally: pending deltas sampled by the compactor (the last hour)'")
    # (one subcommand per statement: Citus refuses more on a reference table)
    ex("ALTER TABLE tally.settings ADD COLUMN backlog_delay_at bigint")
    ex("ALTER TABLE tally.settings ADD COLUMN backlog_refuse_at bigint")
    ex("ALTER TABLE tally.settings ADD CONSTRAINT settings_backlog_check CHECK (backlog_delay_at < backlog_refuse_at)")
    ex("ALTER TABLE tally.write_gen ADD COLUMN backlog_state smallint NOT NULL DEFAULT 0")
    ex("ALTER TABLE tally.write_gen ADD COLUMN backlog_pending bigint NOT NULL DEFAULT 0")
    ex("ALTER TABLE tally.write_gen ADD CONSTRAINT write_gen_backlog_state_check CHECK (backlog_state IN (0, 1, 2))")
    ex(
        """
        CREATE TABLE tally.tracked_tables (
            counter_id integer NOT NULL,
            table_name regclass NOT NULL,
            key_column smallint NOT NULL,
            key_type regtype NOT NULL,
            at_column smallint,
            sum_column smallint,
            sum_type regtype,
            predicate text,
            state text NOT NULL,
            backfilled bigint,
            tracked_by name NOT NULL DEFAULT session_user,
            tracked_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT tracked_tables_pkey PRIMARY KEY (counter_id),
            CONSTRAINT tracked_tables_counter_id_fkey FOREIGN KEY (counter_id) REFERENCES tally.counters (id)
            ON DELETE CASCADE,
            CONSTRAINT tracked_tables_state_check CHECK (state IN ('backfilling', 'active'))
        )
        """
    )
    ex("COMMENT ON TABLE tally.tracked_tables IS 'tally: the tables whose rows a counter counts (tally.track_table)'")
    ex(
        "CREATE TABLE tally.tracked_log (counter_id integer NOT NULL, key text NOT NULL,"
        " at timestamptz NOT NULL, delta bigint NOT NULL)"
    )
    ex("CREATE INDEX tracked_log_counter_id_idx ON tally.tracked_log (counter_id)")
    ex("COMMENT ON TABLE tally.tracked_log IS 'tally: what the triggers of a table backfilled online appended'")
    _recreate("0005", None)
    _relayout_event_ids(by_day=False)


EVENT_IDS_COMMENT = "tally: event ids applied within the idempotency window, by partition (up to 7 days)"


def _relayout_event_ids(by_day: bool) -> None:
    """tally.event_ids laid out again with the ids it holds: in partitions
    of up to 7 days (this revision; each id in the partition of its day) or
    in revision 0005's daily partitions (each id in the one of its
    partition's last day up to today: kept at least as long as before).
    tally._event_partitions(), of the revision in place, makes the new
    partitions. tally.event_days has the columns of that revision already,
    up to next_day, which a downgrade drops here once it is read."""
    ex = tally_code.execute
    last_day = "least(e.next_day - 1, (now() AT TIME ZONE 'UTC')::date)" if by_day else "x.seen_on"
    ex(
        "CREATE TEMP TABLE tally_event_ids_moved AS"
        f" SELECT x.counter_id, x.event_id, {last_day} AS seen_on, x.key"
        " FROM tally.event_ids AS x LEFT JOIN tally.event_days AS e ON e.day = x.seen_on"
    )
    ex(
        "DO $$DECLARE r record; BEGIN"
        " FOR r IN SELECT i.inhrelid::regclass AS rel FROM pg_catalog.pg_inherits AS i"
        " WHERE i.inhparent = 'tally.event_ids'::regclass LOOP EXECUTE format('DROP TABLE %s', r.rel); END LOOP;"
        " END$$"
    )
    ex("DELETE FROM tally.event_days")
    if by_day:
        ex("ALTER TABLE tally.event_days DROP CONSTRAINT event_days_next_day_check")
        ex("ALTER TABLE tally.event_days DROP COLUMN next_day")
        ex("COMMENT ON TABLE tally.event_ids IS 'tally: event ids applied within the idempotency window, by day'")
    ex("SELECT * FROM tally._event_partitions()")
    if by_day:
        first_day = "m.seen_on"
    else:
        first_day = "coalesce((SELECT max(e.day) FROM tally.event_days AS e WHERE e.day <= m.seen_on), m.seen_on)"
    ex(
        "INSERT INTO tally.event_ids (counter_id, event_id, seen_on, key)"
        f" SELECT m.counter_id, m.event_id, {first_day}, m.key FROM tally_event_ids_moved AS m"
        " WHERE m.seen_on >= (SELECT min(e.day) FROM tally.event_days AS e)"
        " ORDER BY 1, 2, 3 ON CONFLICT DO NOTHING"
    )
    ex("DROP TABLE tally_event_ids_moved")
    ex("GRANT SELECT ON ALL TABLES IN SCHEMA tally TO tally_admin")  # as grants.sql, on the new partitions
    if by_day:
        ex("ALTER TABLE tally.event_days ALTER COLUMN first_xid SET NOT NULL")


def downgrade() -> None:
    ex = tally_code.execute
    # Revision 0005 cuts every bucket in UTC: a counter of another zone
    # would be folded on, wrongly, in UTC.
    ex(
        "DO $$DECLARE v text; BEGIN"
        " SELECT string_agg(format('%s (%s)', c.name, c.time_zone), ', ' ORDER BY c.name) INTO v"
        " FROM tally.counters AS c WHERE c.time_zone <> 'UTC';"
        " IF v IS NOT NULL THEN"
        " RAISE EXCEPTION 'tally downgrade to 0005: counters with a time zone other than UTC: %', v"
        " USING ERRCODE = 'object_not_in_prerequisite_state',"
        " HINT = 'revision 0005 has UTC buckets only: drop these counters (tally.drop_counter) first'; END IF;"
        " END$$"
    )
    # Tracked tables stop being counted: their triggers and trigger
    # functions go (the counters and what they counted stay).
    ex("SELECT tally._untrack(t.counter_id) FROM tally.tracked_tables AS t ORDER BY t.counter_id")
    _recreate(None, "0005")
    _relayout_event_ids(by_day=True)
    ex("DROP TABLE tally.tracked_log")
    ex("DROP TABLE tally.tracked_tables")
    ex("DROP TABLE tally.quarantine_releases")
    ex("DROP INDEX tally.quarantine_counter_id_key_idx")
    ex(
        "ALTER TABLE tally.crash_resets DROP CONSTRAINT crash_resets_cause_check,"
        " DROP COLUMN cause, DROP COLUMN lost_until"
    )
    ex("ALTER TABLE tally.write_gen DROP COLUMN folded_before")
    ex("ALTER TABLE tally.counters DROP COLUMN time_zone")
    ex("DROP TABLE tally.backlog_samples")
    ex("ALTER TABLE tally.write_gen DROP CONSTRAINT write_gen_backlog_state_check")
    ex("ALTER TABLE tally.write_gen DROP COLUMN backlog_pending")
    ex("ALTER TABLE tally.write_gen DROP COLUMN backlog_state")
    ex("ALTER TABLE tally.settings DROP CONSTRAINT settings_backlog_check")
    ex("ALTER TABLE tally.settings DROP COLUMN backlog_refuse_at")
    ex("ALTER TABLE tally.settings DROP COLUMN backlog_delay_at")
