-- tally's code, in the order it is applied: one object per file, grouped by
-- the stage of the data flow it serves. The migrations apply exactly this
-- list, in this order (migrations/tally_code.py), then grants.sql; a code
-- file (tally.*.sql) under sql/ that is not listed here, or a listed file
-- that is missing, stops the migration. Tables, partitions and other state
-- are made by the numbered revisions in migrations/versions/; sql/schema/
-- shows the tables as they stand at the head (not applied by migrations).
--
-- An object whose body PostgreSQL binds when it is created (a view, a
-- LANGUAGE sql function) comes after what it names; PL/pgSQL and PL/Python
-- bodies are bound when they run.
--
-- The mode of an install (single node, or distributed on Citus) is decided
-- in one place, tally.settings.distributed (tally._distributed()), and
-- acted on at install time: where the two modes differ, the object has a
-- second body for Citus beside it (tally.<name>.citus.sql, the same
-- signature), listed right after the plain one; the migration applies the
-- body of the install's mode, never both. So the single node's hot path
-- never asks which mode it is in.

-- 1. Counters: what is counted. A counter has a name, the granularities it
--    keeps and a durability; everything else refers to it by id.
\ir counters/tally._distributed.sql
\ir counters/tally._lookup_counter.sql
\ir counters/tally._granularity.sql
\ir counters/tally._time_zone.sql
\ir counters/tally._has_data.sql
\ir counters/tally.create_counter.sql
\ir counters/tally.set_time_zone.sql
\ir counters/tally.drop_counter.sql

-- 2. Write: the hot path. increment_counter / increment_counters validate,
--    look the counter and the active generation up, and append delta rows to
--    this backend's shard (tally._shard): no shared row is updated, so writers
--    never wait on each other. With an event id the increment is claimed in
--    the idempotency store first (tally._claim_events) and applied once.
\ir write/tally._valid_key.sql
\ir write/tally._valid_at.sql
\ir write/tally._valid_event_id.sql
\ir write/tally._check_key.sql
\ir write/tally._check_at.sql
\ir write/tally._check_event_id.sql
\ir write/tally._check_increment.sql
\ir write/tally._counters_vanished.sql
\ir write/tally._shard_no.sql
\ir write/tally._shard.sql
\ir write/tally._claim_bounds.sql
\ir write/tally._claim_days.sql
\ir write/tally._no_event_partition.sql
\ir write/tally._claim_events.sql
\ir write/tally._claim_event.sql
\ir write/tally._claim_event.citus.sql
\ir write/tally._append_claimed.sql
\ir write/tally._append_claimed.citus.sql
\ir write/tally._append_local.sql
\ir write/tally._append_local_batch.sql
\ir write/tally._make_append_local.sql
\ir write/tally._make_append_local.citus.sql
\ir write/tally._set_admission.sql
\ir write/tally._admit.sql
\ir write/tally.set_backlog_limits.sql
\ir write/tally._increment_checked.sql
\ir write/tally.increment_counter.sql
\ir write/tally.increment_counter.citus.sql
\ir write/tally.increment_counters.sql
\ir write/tally.set_event_window.sql

-- 3. Fold: the compactor. compact / compact_loop (PL/Python) run steps
--    (compact_step), each one transaction under the fold lock: fold a chunk of
--    an inactive shard into totals and rollups (_fold_chunk, _apply_batch,
--    sorted upserts), set poison aside (_quarantine_overflow), TRUNCATE drained
--    shards nobody can see into (_reclaim_shards), flip the generations.
--    Parallel folds: compactors of different slices (_slice: a hash of
--    counter and key) fold at once under the fold lock shared and their
--    slice's locks (_lock_slice); reclaim and flip take it exclusive.
\ir fold/tally._fold_lock_key.sql
\ir fold/tally._partition_lock_key.sql
\ir fold/tally._slice_buckets.sql
\ir fold/tally._slice.sql
\ir fold/tally._check_slice.sql
\ir fold/tally._lock_slice.sql
\ir fold/tally._next_shard.sql
\ir fold/tally._flips.sql
\ir fold/tally._invisible_to_all.sql
\ir fold/tally._ensure_partitions.sql
\ir fold/tally._local_minute.sql
\ir fold/tally._fold_upserts.sql
\ir fold/tally._apply_batch.sql
\ir fold/tally._quarantine_reason.sql
\ir fold/tally._overflowing.sql
\ir fold/tally._quarantine_overflow.sql
\ir fold/tally._fold_chunk.sql
\ir fold/tally._reclaim_shards.sql
\ir fold/tally._fold_step.sql
\ir fold/tally.sample_backlog.sql
\ir fold/tally._fold_step.citus.sql
\ir fold/tally._mark_citus_shards.sql
\ir fold/tally._folded_before.sql
\ir fold/tally._promoted_at.sql
\ir fold/tally._detect_crash_reset.sql
\ir fold/tally._detect_crash_reset.citus.sql
\ir fold/tally._record_fold.sql
\ir fold/tally.compact_step.sql
\ir fold/tally._fold.sql
\ir fold/tally._compactor.sql
\ir fold/tally.compact.sql
\ir fold/tally.compact_loop.sql

-- 4. Read: folded values plus the pending deltas of the key, in one
--    statement (one snapshot): counter_value, counter_series, top_keys. On
--    a hot standby they read the logged shards only (_logged_shards): the
--    UNLOGGED fast shards are not replicated. A key with deltas set aside
--    (quarantine) is read without them, with a WARNING.
\ir read/tally._overflow.sql
\ir read/tally._as_bigint.sql
\ir read/tally._check_range.sql
\ir read/tally._pending.sql
\ir read/tally._logged_shards.sql
\ir read/tally._replica_filter.sql
\ir read/tally._warn_quarantined.sql
\ir read/tally._warn_overflow.sql
\ir read/tally.counter_value.sql
\ir read/tally.counter_series.sql
\ir read/tally.top_keys.sql
\ir read/tally.counter_values.sql
\ir read/tally._window_ceil.sql
\ir read/tally._window_boundary.sql
\ir read/tally._window_parts.sql
\ir read/tally._window_refuse.sql
\ir read/tally.counter_window.sql

-- 5. Retention: how long each granularity's buckets are kept, per counter;
--    pg_partman drops a partition once no counter keeps any bucket in it.
\ir retention/tally._keep.sql
\ir retention/tally._cutoff.sql
\ir retention/tally._note_coverage.sql
\ir retention/tally._sync_retention.sql
\ir retention/tally.set_retention.sql
\ir retention/tally.reset_retention.sql
\ir retention/tally.retention_policies.sql

-- 6. Drift: whether a counter's buckets add up, and whether it agrees with
--    its source of truth (run with its registrant's privileges); reconcile
--    repairs and records every correction.
\ir drift/tally._install_source.sql
\ir drift/tally._source_value.sql
\ir drift/tally._sample_keys.sql
\ir drift/tally._internal_drift.sql
\ir drift/tally._repair_internal.sql
\ir drift/tally._record_drift.sql
\ir drift/tally._correct.sql
\ir drift/tally.set_source.sql
\ir drift/tally.check_drift.sql
\ir drift/tally.reconcile.sql
\ir drift/tally.drift.sql

-- 7. Operations: maintenance (partitions ahead, retention, the idempotency
--    store's days), pg_cron scheduling, crash acknowledgement, releasing
--    quarantined deltas, and the views tally.health and its inputs (what
--    is pending and what this node is: primary or hot standby).
\ir ops/tally._coordinator_only.sql
\ir ops/tally._coordinator_only.citus.sql
\ir ops/tally._event_partitions.sql
\ir ops/tally.maintain.sql
\ir ops/tally.schedule_compactor.sql
\ir ops/tally.unschedule_compactor.sql
\ir ops/tally.acknowledge_crash.sql
\ir ops/tally._check_release.sql
\ir ops/tally.release_quarantined.sql
\ir ops/tally.pending_deltas.sql
\ir ops/tally.node_status.sql
\ir ops/tally.compactor_lag.sql
\ir ops/tally.compactor_runs.sql
\ir ops/tally.deadlocks.sql
\ir ops/tally.node_deadlocks.sql
\ir ops/tally.node_deadlocks.citus.sql
\ir ops/tally.quarantined.sql
\ir ops/tally.counter_status.sql
\ir ops/tally.crash_reset_log.sql
\ir ops/tally.health.sql

-- 8. Tracked tables: counters that keep themselves equal to a table's rows
--    per key. Statement triggers (tally._tracked_<counter id>(), made by
--    tally._track_install from tally.tracked_tables) append one delta per
--    (key, minute) per statement through the write path's shards; the rows
--    already there are counted once (tally._track_backfill), exactly, also
--    while writers go on (tally.track_table_online); event triggers keep
--    it right through DDL (tally._track_ddl).
\ir track/tally._track_refuse.sql
\ir track/tally._track_where.sql
\ir track/tally._track_check.sql
\ir track/tally._track_sql.sql
\ir track/tally._track_install.sql
\ir track/tally._track_backfill.sql
\ir track/tally._untrack.sql
\ir track/tally._track_ddl.sql
\ir track/tally.track_table.sql
\ir track/tally.backfill_tracked.sql
\ir track/tally.track_table_online.sql
\ir track/tally.untrack_table.sql

-- Privileges, last: nothing for PUBLIC, EXECUTE by routine name to the roles.
\ir grants.sql
