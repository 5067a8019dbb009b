-- Shape of schema tally: tables, columns, the 16 delta shards in two
-- generations (delta_g{gen}_fast_{i} UNLOGGED = shard gen*8+i,
-- delta_g{gen}_durable_{i} logged = shard gen*8+4+i), the one-row write_gen,
-- rollups partitioned by range with no default partition, tally.shards (one
-- row per delta shard), retention (defaults, per-counter overrides), the
-- observability tables (the UNLOGGED one-row crash marker included), the
-- views, the known functions, and the pinned search_path of every SECURITY
-- DEFINER function.
BEGIN;
SELECT plan(185);

SELECT has_schema('tally', 'schema tally exists');

-- Tables
SELECT has_table('tally', 'installed_extensions', 'table tally.installed_extensions exists');
SELECT has_table('tally', 'granularities', 'table tally.granularities exists');
SELECT has_table('tally', 'counters', 'table tally.counters exists');
SELECT has_table('tally', 'delta', 'table tally.delta exists');
SELECT hasnt_table('tally', 'fold_batch', 'no shared scratch table: each fold session has its own (pg_temp.tally_fold_batch)');
SELECT has_table('tally', 'totals', 'table tally.totals exists');
SELECT has_table('tally', 'fold_runs', 'table tally.fold_runs exists');
SELECT has_table('tally', 'rollup_minute', 'table tally.rollup_minute exists');
SELECT has_table('tally', 'rollup_hour', 'table tally.rollup_hour exists');
SELECT has_table('tally', 'rollup_day', 'table tally.rollup_day exists');
SELECT has_table('tally', 'rollup_week', 'table tally.rollup_week exists');
SELECT has_table('tally', 'rollup_month', 'table tally.rollup_month exists');
SELECT has_table('tally', 'shards', 'table tally.shards exists');
SELECT has_table('tally', 'retention', 'table tally.retention exists');

-- Columns
SELECT columns_are(
    'tally', 'counters', ARRAY['id', 'name', 'granularities', 'durable', 'created_at', 'time_zone'],
    'tally.counters has the expected columns'
);
SELECT col_type_is('tally', 'counters', 'granularities', 'text[]', 'counters.granularities is text[]');
SELECT col_default_is('tally', 'counters', 'time_zone', 'UTC', 'counters.time_zone is UTC by default');
SELECT col_is_unique('tally', 'counters', ARRAY['name'], 'counters.name is unique');
SELECT columns_are(
    'tally', 'delta', ARRAY['shard', 'counter_id', 'key', 'delta', 'at', 'written_at'],
    'tally.delta has the expected columns'
);
SELECT col_type_is('tally', 'delta', 'delta', 'bigint', 'delta.delta is bigint');
SELECT col_type_is('tally', 'delta', 'at', 'timestamp with time zone', 'delta.at is timestamptz');
SELECT columns_are(
    'tally', 'totals', ARRAY['counter_id', 'key', 'value'],
    'tally.totals has the expected columns'
);
SELECT col_is_pk('tally', 'totals', ARRAY['counter_id', 'key'], 'totals is keyed by (counter_id, key)');
SELECT columns_are(
    'tally', 'fold_runs',
    ARRAY['id', 'started_at', 'finished_at', 'deltas', 'attempts', 'outcome', 'shard', 'mode', 'error', 'slice', 'slices'],
    'tally.fold_runs has the expected columns (shard, mode and key slice of each fold included)'
);
SELECT throws_ok(
    $$INSERT INTO tally.fold_runs (started_at, outcome, mode) VALUES (now(), 'ok', 'merge')$$, '23514', NULL,
    'fold_runs.mode is truncate or delete (or NULL)'
);
SELECT throws_ok(
    $$INSERT INTO tally.fold_runs (started_at, outcome) VALUES (now(), 'partial')$$, '23514', NULL,
    'fold_runs.outcome is ok, retried or failed'
);
SELECT columns_are(
    'tally', 'rollup_day', ARRAY['counter_id', 'key', 'bucket', 'value'],
    'tally.rollup_day has the expected columns'
);
SELECT col_is_pk(
    'tally', 'rollup_day', ARRAY['counter_id', 'key', 'bucket'],
    'rollup_day is keyed by (counter_id, key, bucket)'
);
SELECT results_eq(
    $$SELECT c.relname::text COLLATE "default", a.attname::text COLLATE "default", format_type(a.atttypid, a.atttypmod)
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE c.relnamespace = 'tally'::regnamespace
        AND c.relname IN ('rollup_minute', 'rollup_hour', 'rollup_day', 'rollup_week', 'rollup_month')
      ORDER BY c.relname, a.attnum$$,
    $$SELECT r, col, typ
      FROM unnest(ARRAY['rollup_day', 'rollup_hour', 'rollup_minute', 'rollup_month', 'rollup_week']) AS r
      CROSS JOIN LATERAL (VALUES (1, 'counter_id', 'integer'), (2, 'key', 'text'),
                                 (3, 'bucket', 'timestamp with time zone'), (4, 'value', 'bigint'))
          AS v (n, col, typ)
      ORDER BY r, n$$,
    'every rollup table has (counter_id integer, key text, bucket timestamptz, value bigint)'
);
SELECT columns_are(
    'tally', 'granularities', ARRAY['name', 'ord', 'partition_interval', 'default_retention'],
    'tally.granularities has the expected columns (default_retention included)'
);
SELECT results_eq(
    'SELECT name, default_retention FROM tally.granularities ORDER BY ord',
    $$VALUES ('minute'::text, '7 days'::interval), ('hour', '90 days'), ('day', NULL), ('week', NULL), ('month', NULL)$$,
    'default retention: minute 7 days, hour 90 days, day/week/month forever (NULL)'
);
SELECT results_eq(
    'SELECT name, ord, partition_interval FROM tally.granularities ORDER BY ord',
    $$VALUES ('minute'::text, 1::smallint, '1 day'::interval), ('hour', 2::smallint, '1 month'),
             ('day', 3::smallint, '1 year'), ('week', 4::smallint, '1 year'), ('month', 5::smallint, '1 year')$$,
    'tally.granularities lists minute..month with their partition intervals'
);

-- Delta shards: two generations of 4 fast (UNLOGGED) and 4 durable (logged)
-- shards; shard value = gen * 8 + (durable ? 4 : 0) + i.
SELECT is_partitioned('tally', 'delta', 'tally.delta is partitioned');
SELECT is(
    (SELECT pg_catalog.pg_get_partkeydef('tally.delta'::regclass)),
    'LIST (shard)',
    'tally.delta is list-partitioned by shard'
);
SELECT partitions_are(
    'tally', 'delta',
    ARRAY(SELECT format('tally.delta_g%s_%s_%s', g, k, i)
          FROM generate_series(0, 1) AS g, unnest(ARRAY['fast', 'durable']) AS k, generate_series(0, 3) AS i),
    'tally.delta has exactly the 16 shards delta_g{0,1}_{fast,durable}_{0..3}'
);
SELECT results_eq(
    $$SELECT substring(pg_catalog.pg_get_expr(c.relpartbound, c.oid) FROM '(\d+)')::int,
             c.relname::text COLLATE "default", c.relpersistence::text
      FROM pg_catalog.pg_inherits AS i
      JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'tally.delta'::regclass
      ORDER BY 1$$,
    $$VALUES (0, 'delta_g0_fast_0'::text, 'u'::text), (1, 'delta_g0_fast_1', 'u'),
             (2, 'delta_g0_fast_2', 'u'), (3, 'delta_g0_fast_3', 'u'),
             (4, 'delta_g0_durable_0', 'p'), (5, 'delta_g0_durable_1', 'p'),
             (6, 'delta_g0_durable_2', 'p'), (7, 'delta_g0_durable_3', 'p'),
             (8, 'delta_g1_fast_0', 'u'), (9, 'delta_g1_fast_1', 'u'),
             (10, 'delta_g1_fast_2', 'u'), (11, 'delta_g1_fast_3', 'u'),
             (12, 'delta_g1_durable_0', 'p'), (13, 'delta_g1_durable_1', 'p'),
             (14, 'delta_g1_durable_2', 'p'), (15, 'delta_g1_durable_3', 'p')$$,
    'shard gen*8+i is delta_g{gen}_fast_i (UNLOGGED), shard gen*8+4+i is delta_g{gen}_durable_i (logged)'
);
SELECT is(
    (SELECT count(*) FILTER (WHERE c.relpersistence = 'u')
     FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'tally.delta'::regclass AND c.relname LIKE 'delta\_g_\_fast\_%'),
    8::bigint,
    'the 8 fast shards (4 per generation) are UNLOGGED'
);
SELECT is(
    (SELECT count(*) FILTER (WHERE c.relpersistence = 'p')
     FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'tally.delta'::regclass AND c.relname LIKE 'delta\_g_\_durable\_%'),
    8::bigint,
    'the 8 durable shards (4 per generation) are logged'
);

-- Per delta shard: the transaction that last drained it, and when it was TRUNCATEd.
SELECT columns_are(
    'tally', 'shards',
    ARRAY['shard_table', 'drained_xid', 'drained_at', 'resume_at', 'truncated_at', 'shard', 'gen', 'durable', 'slot'],
    'tally.shards has the expected columns'
);
SELECT is_empty(
    $$SELECT s.shard_table FROM tally.shards AS s
      JOIN pg_catalog.pg_class AS c ON c.oid = s.shard_table
      WHERE s.shard IS DISTINCT FROM tally._shard_no(s.gen, s.durable, s.slot)
         OR s.durable IS DISTINCT FROM (c.relpersistence = 'p')
         OR pg_catalog.pg_get_expr(c.relpartbound, c.oid) IS DISTINCT FROM format('FOR VALUES IN (''%s'')', s.shard)$$,
    'the shard layout is recorded once: each shard''s number is tally._shard_no(gen, durable, slot), its list bound, '
    'and it is UNLOGGED exactly when it holds fast counters'
);
SELECT col_is_pk('tally', 'shards', 'shard_table', 'shards is keyed by shard_table');
SELECT col_type_is('tally', 'shards', 'shard_table', 'regclass', 'shards.shard_table is regclass');
SELECT col_type_is('tally', 'shards', 'drained_xid', 'xid8', 'shards.drained_xid is xid8');
SELECT col_type_is('tally', 'shards', 'drained_at', 'timestamp with time zone', 'shards.drained_at is timestamptz');
SELECT col_type_is('tally', 'shards', 'truncated_at', 'timestamp with time zone', 'shards.truncated_at is timestamptz');
-- Per delta shard and key slice of a parallel fold: where the slice's last
-- chunk stopped and the last transaction that deleted its deltas.
SELECT columns_are(
    'tally', 'shard_slices', ARRAY['shard_table', 'slices', 'slice', 'resume_at', 'deleted_xid'],
    'tally.shard_slices has the expected columns'
);
SELECT col_is_pk(
    'tally', 'shard_slices', ARRAY['shard_table', 'slices', 'slice'], 'shard_slices is keyed by (shard_table, slices, slice)'
);
SELECT fk_ok('tally', 'shard_slices', 'shard_table', 'tally', 'shards', 'shard_table', 'shard_slices names a shard');
SELECT throws_ok(
    $$INSERT INTO tally.shard_slices (shard_table, slices, slice, deleted_xid)
      SELECT s.shard_table, 2, 2, pg_current_xact_id() FROM tally.shards AS s LIMIT 1$$, '23514', NULL,
    'a slice must be below the slice count'
);
SELECT throws_ok(
    $$INSERT INTO tally.shard_slices (shard_table, slices, slice, deleted_xid)
      SELECT s.shard_table, 1, 0, pg_current_xact_id() FROM tally.shards AS s LIMIT 1$$, '23514', NULL,
    'one slice is no slicing: a serial fold keeps its place in tally.shards'
);
SELECT set_eq(
    'SELECT shard_table FROM tally.shards',
    $$SELECT inhrelid::regclass FROM pg_catalog.pg_inherits WHERE inhparent = 'tally.delta'::regclass$$,
    'tally.shards has exactly one row per delta shard'
);

-- Retention overrides: one row per (counter, granularity), keep NULL = forever.
SELECT columns_are(
    'tally', 'retention', ARRAY['counter_id', 'granularity', 'keep'],
    'tally.retention has the expected columns'
);
SELECT col_is_pk('tally', 'retention', ARRAY['counter_id', 'granularity'], 'retention is keyed by (counter_id, granularity)');
SELECT col_type_is('tally', 'retention', 'keep', 'interval', 'retention.keep is interval');
SELECT col_is_null('tally', 'retention', 'keep', 'retention.keep may be NULL (keep forever)');
SELECT fk_ok('tally', 'retention', 'counter_id', 'tally', 'counters', 'id', 'retention.counter_id references counters.id');
SELECT fk_ok(
    'tally', 'retention', 'granularity', 'tally', 'granularities', 'name',
    'retention.granularity references granularities.name'
);
SELECT is(
    (SELECT confdeltype::text FROM pg_catalog.pg_constraint
     WHERE conrelid = 'tally.retention'::regclass AND confrelid = 'tally.counters'::regclass),
    'c',
    'a counter''s overrides go with it (ON DELETE CASCADE)'
);

-- The write generation: one row telling writers which generation to append to.
SELECT has_table('tally', 'write_gen', 'table tally.write_gen exists');
SELECT columns_are(
    'tally', 'write_gen',
    ARRAY['singleton', 'gen', 'flips', 'flipped_at', 'emptied_at_flip', 'folded_before', 'backlog_state',
          'backlog_pending'],
    'tally.write_gen has the expected columns'
);
SELECT col_is_pk('tally', 'write_gen', 'singleton', 'write_gen is keyed by singleton');
SELECT results_eq(
    $$SELECT format_type(a.atttypid, a.atttypmod), a.attnotnull
      FROM pg_catalog.pg_attribute AS a
      WHERE a.attrelid = 'tally.write_gen'::regclass AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum$$,
    $$VALUES ('boolean'::text, true), ('smallint', true), ('bigint', true), ('timestamp with time zone', true),
             ('bigint[]', true), ('timestamp with time zone[]', true), ('smallint', true), ('bigint', true)$$,
    'write_gen is (singleton boolean, gen smallint, flips bigint, flipped_at timestamptz, emptied_at_flip bigint[], '
    'folded_before timestamptz[], backlog_state smallint, backlog_pending bigint), all NOT NULL'
);
SELECT results_eq(
    'SELECT singleton, gen, flips, emptied_at_flip, folded_before FROM tally.write_gen',
    $$VALUES (true, 0::smallint, 0::bigint, '{0,0}'::bigint[], '{NULL,NULL}'::timestamptz[])$$,
    'write_gen holds exactly one row: a fresh install writes to generation 0, never flipped'
);
SELECT throws_ok(
    'INSERT INTO tally.write_gen (gen) VALUES (0)', '23505', NULL,
    'a second write_gen row is refused (unique singleton)'
);
SELECT throws_ok(
    'INSERT INTO tally.write_gen (singleton, gen) VALUES (false, 0)', '23514', NULL,
    'a write_gen row with singleton false is refused'
);
SELECT throws_ok(
    'UPDATE tally.write_gen SET gen = 2', '23514', NULL,
    'a generation other than 0 or 1 is refused'
);
SELECT has_table('tally', 'shard_slices', 'table tally.shard_slices exists');

-- Observability: cumulative fold failure counts, the deadlock baseline at
-- install, sources of truth, drift checks and runs, corrections, crash
-- resets, and the UNLOGGED crash marker.
SELECT has_table('tally', 'fold_stats', 'table tally.fold_stats exists');
SELECT has_table('tally', 'install_baseline', 'table tally.install_baseline exists');
SELECT has_table('tally', 'sources', 'table tally.sources exists');
SELECT has_table('tally', 'drift_checks', 'table tally.drift_checks exists');
SELECT has_table('tally', 'drift_runs', 'table tally.drift_runs exists');
SELECT has_table('tally', 'corrections', 'table tally.corrections exists');
SELECT has_table('tally', 'crash_marker', 'table tally.crash_marker exists');
SELECT has_table('tally', 'crash_resets', 'table tally.crash_resets exists');
SELECT has_table('tally', 'settings', 'table tally.settings exists');
SELECT columns_are(
    'tally', 'settings',
    ARRAY['singleton', 'event_window_days', 'distributed', 'backlog_delay_at', 'backlog_refuse_at'],
    'tally.settings has the expected columns'
);
SELECT has_table('tally', 'installed_roles', 'table tally.installed_roles exists');
SELECT columns_are(
    'tally', 'event_ids', ARRAY['counter_id', 'event_id', 'seen_on', 'key'], 'tally.event_ids has the expected columns'
);
SELECT col_is_pk(
    'tally', 'event_ids', ARRAY['counter_id', 'event_id', 'seen_on'],
    'tally.event_ids: one row per counter, event id and partition'
);
SELECT is(
    (SELECT pg_catalog.pg_get_partkeydef('tally.event_ids'::regclass)), 'RANGE (seen_on)',
    'tally.event_ids is partitioned by days (old partitions are dropped whole)'
);
SELECT results_eq(
    $$SELECT pg_catalog.pg_get_expr(c.relpartbound, c.oid) COLLATE "C" FROM pg_catalog.pg_inherits AS i
      JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'tally.event_ids'::regclass ORDER BY c.relname$$,
    $$SELECT format('FOR VALUES FROM (%L) TO (%L)', d, d + 7) COLLATE "C"
      FROM unnest(ARRAY[(now() AT TIME ZONE 'UTC')::date - 7, (now() AT TIME ZONE 'UTC')::date]) AS d$$,
    'on a new install tally.event_ids has two 7-day partitions: the 7-day window, and today on'
);
SELECT results_eq(
    'SELECT day, next_day FROM tally.event_days ORDER BY day',
    $$SELECT d, d + 7 FROM unnest(ARRAY[(now() AT TIME ZONE 'UTC')::date - 7, (now() AT TIME ZONE 'UTC')::date]) AS d$$,
    'and tally.event_days lists them'
);
SELECT columns_are(
    'tally', 'fold_stats', ARRAY['singleton', 'retried_deadlocks', 'retried_other', 'abandoned'],
    'tally.fold_stats has the expected columns'
);
SELECT columns_are(
    'tally', 'install_baseline', ARRAY['singleton', 'installed_at', 'deadlocks', 'stats_reset'],
    'tally.install_baseline has the expected columns'
);
SELECT columns_are(
    'tally', 'sources', ARRAY['counter_id', 'query', 'registered_by', 'registered_at'],
    'tally.sources has the expected columns'
);
SELECT columns_are(
    'tally', 'drift_checks', ARRAY['id', 'counter_id', 'checked_at', 'key', 'kind', 'detail', 'expected', 'actual'],
    'tally.drift_checks has the expected columns'
);
SELECT columns_are(
    'tally', 'drift_runs',
    ARRAY['id', 'counter_id', 'checked_at', 'keys_checked', 'inconsistent_keys', 'drifting_keys', 'max_abs_drift'],
    'tally.drift_runs has the expected columns'
);
SELECT columns_are(
    'tally', 'corrections',
    ARRAY['id', 'counter_id', 'key', 'granularity', 'bucket', 'delta', 'reason', 'applied_at', 'applied_by'],
    'tally.corrections has the expected columns'
);
SELECT columns_are('tally', 'crash_marker', ARRAY['singleton', 'expected'], 'tally.crash_marker has the expected columns');
SELECT columns_are(
    'tally', 'crash_resets',
    ARRAY['id', 'detected_at', 'server_started_at', 'lost_since', 'acknowledged_at', 'acknowledged_by', 'node',
          'lost_until', 'cause'],
    'tally.crash_resets has the expected columns'
);
SELECT columns_are(
    'tally', 'quarantine_releases',
    ARRAY['id', 'counter_id', 'key', 'action', 'deltas', 'delta_sum', 'released_at', 'released_by'],
    'tally.quarantine_releases has the expected columns'
);
SELECT columns_are(
    'tally', 'backlog_samples', ARRAY['sampled_at', 'pending'], 'tally.backlog_samples has the expected columns'
);
SELECT is(
    (SELECT relpersistence::text FROM pg_catalog.pg_class WHERE oid = 'tally.crash_marker'::regclass),
    'u',
    'tally.crash_marker is UNLOGGED (a crash reset empties it)'
);
-- (A crash of the cluster since the install empties it: run the suite
-- against a freshly created database.)
SELECT results_eq(
    'SELECT singleton FROM tally.crash_marker', 'VALUES (true)',
    'tally.crash_marker holds its one row (no crash since the install)'
);

-- Rollups
SELECT is_partitioned('tally', 'rollup_minute', 'tally.rollup_minute is partitioned');
SELECT is_partitioned('tally', 'rollup_hour', 'tally.rollup_hour is partitioned');
SELECT is_partitioned('tally', 'rollup_day', 'tally.rollup_day is partitioned');
SELECT is_partitioned('tally', 'rollup_week', 'tally.rollup_week is partitioned');
SELECT is_partitioned('tally', 'rollup_month', 'tally.rollup_month is partitioned');
SELECT results_eq(
    $$SELECT c.relname::text COLLATE "default", pg_catalog.pg_get_partkeydef(c.oid)
      FROM pg_catalog.pg_class AS c
      WHERE c.relnamespace = 'tally'::regnamespace AND c.relname LIKE 'rollup\_%' AND c.relkind = 'p'
      ORDER BY 1$$,
    $$VALUES ('rollup_day'::text, 'RANGE (bucket)'::text), ('rollup_hour', 'RANGE (bucket)'),
             ('rollup_minute', 'RANGE (bucket)'), ('rollup_month', 'RANGE (bucket)'),
             ('rollup_week', 'RANGE (bucket)')$$,
    'the 5 rollup tables are range-partitioned by bucket'
);
SELECT is_empty(
    $$SELECT pt.partrelid::regclass
      FROM pg_catalog.pg_partitioned_table AS pt
      JOIN pg_catalog.pg_class AS c ON c.oid = pt.partrelid
      WHERE c.relnamespace = 'tally'::regnamespace AND pt.partdefid <> 0$$,
    'no partitioned table in tally (rollups, delta) has a default partition'
);
SELECT hasnt_table('tally', 'rollup_day_default', 'pg_partman''s default partition of rollup_day was dropped');
SELECT results_eq(
    $$SELECT parent_table, control, partition_interval
      FROM partman.part_config WHERE parent_table LIKE 'tally.%' ORDER BY parent_table$$,
    $$VALUES ('tally.rollup_day'::text, 'bucket'::text, '1 year'::text), ('tally.rollup_hour', 'bucket', '1 mon'),
             ('tally.rollup_minute', 'bucket', '1 day'), ('tally.rollup_month', 'bucket', '1 year'),
             ('tally.rollup_week', 'bucket', '1 year')$$,
    'pg_partman manages the 5 rollups with the granularity''s partition interval'
);

-- View
SELECT has_view('tally', 'compactor_lag', 'view tally.compactor_lag exists');
SELECT columns_are(
    'tally', 'compactor_lag',
    ARRAY['shard', 'shard_table', 'durability', 'active', 'pending_deltas', 'oldest_pending_age', 'last_fold_at'],
    'tally.compactor_lag has the expected columns'
);
SELECT has_view('tally', 'retention_policies', 'view tally.retention_policies exists');
SELECT columns_are(
    'tally', 'retention_policies', ARRAY['counter', 'granularity', 'keep', 'set_by', 'oldest_bucket_kept'],
    'tally.retention_policies has the expected columns'
);
SELECT has_view('tally', 'compactor_runs', 'view tally.compactor_runs exists');
SELECT has_view('tally', 'deadlocks', 'view tally.deadlocks exists');
SELECT has_view('tally', 'drift', 'view tally.drift exists');
SELECT has_view('tally', 'health', 'view tally.health exists');

-- Functions and procedures. Only the ones known here are checked, one by one:
-- the schema may hold more.
SELECT has_function('tally', '_apply_batch', ARRAY['regclass'], 'function tally._apply_batch(regclass) exists');
SELECT has_function('tally', '_check_at', ARRAY['text', 'timestamp with time zone'], 'function tally._check_at(text, timestamptz) exists');
SELECT has_function('tally', '_check_key', ARRAY['text', 'text'], 'function tally._check_key(text, text) exists');
SELECT has_function(
    'tally', '_check_range', ARRAY['text', 'timestamp with time zone', 'timestamp with time zone'],
    'function tally._check_range(text, timestamptz, timestamptz) exists'
);
SELECT has_function('tally', '_lookup_counter', ARRAY['text', 'text'], 'function tally._lookup_counter(text, text) exists');
SELECT has_function(
    'tally', '_cutoff', ARRAY['integer', 'text', 'timestamp with time zone'],
    'function tally._cutoff(integer, text, timestamptz) exists'
);
SELECT has_function(
    'tally', '_ensure_partitions', ARRAY['regclass'], 'function tally._ensure_partitions(regclass) exists'
);
SELECT has_function('tally', '_flips', ARRAY[]::text[], 'function tally._flips() exists');
SELECT has_function('tally', '_fold', ARRAY['integer'], 'function tally._fold(integer) exists');
SELECT has_function('tally', '_fold_lock_key', ARRAY[]::text[], 'function tally._fold_lock_key() exists');
SELECT has_function('tally', '_invisible_to_all', ARRAY['xid8'], 'function tally._invisible_to_all(xid8) exists');
SELECT has_function('tally', '_keep', ARRAY['integer', 'text'], 'function tally._keep(integer, text) exists');
SELECT has_function(
    'tally', '_fold_step', ARRAY['integer', 'bigint', 'integer', 'interval', 'integer', 'integer'],
    'function tally._fold_step(integer, bigint, integer, interval, integer, integer) exists'
);
SELECT has_function(
    'tally', '_granularity', ARRAY['text', 'tally.counters', 'text'],
    'function tally._granularity(text, tally.counters, text) exists'
);
SELECT has_function('tally', '_pending', ARRAY[]::text[], 'function tally._pending() exists');
SELECT has_function(
    'tally', '_record_fold', ARRAY['timestamp with time zone', 'bigint', 'integer', 'text', 'text', 'text'],
    'function tally._record_fold(timestamptz, bigint, integer, text, text, text) exists'
);
SELECT has_function('tally', '_sync_retention', ARRAY[]::text[], 'function tally._sync_retention() exists');
SELECT has_function(
    'tally', 'compact', ARRAY['integer', 'integer', 'integer', 'integer'],
    'procedure tally.compact(integer, integer, integer, integer) exists'
);
SELECT has_function(
    'tally', 'compact_loop', ARRAY['double precision', 'double precision', 'integer', 'integer', 'integer', 'integer'],
    'procedure tally.compact_loop(double precision, double precision, integer, integer, integer, integer) exists'
);
SELECT has_function(
    'tally', 'counter_series', ARRAY['text', 'text', 'text', 'timestamp with time zone', 'timestamp with time zone'],
    'function tally.counter_series(text, text, text, timestamptz, timestamptz) exists'
);
SELECT has_function('tally', 'counter_value', ARRAY['text', 'text'], 'function tally.counter_value(text, text) exists');
SELECT has_function(
    'tally', 'create_counter', ARRAY['text', 'text[]', 'boolean', 'text'],
    'function tally.create_counter(text, text[], boolean, text) exists'
);
SELECT has_function('tally', 'drop_counter', ARRAY['text'], 'function tally.drop_counter(text) exists');
SELECT has_function(
    'tally', 'set_time_zone', ARRAY['text', 'text'], 'function tally.set_time_zone(text, text) exists'
);
SELECT has_function('tally', 'maintain', ARRAY['text'], 'function tally.maintain(text) exists');
SELECT has_function(
    'tally', 'compact_step', ARRAY['integer', 'bigint', 'integer', 'integer', 'interval', 'integer', 'integer', 'text'],
    'function tally.compact_step(integer, bigint, integer, integer, interval, integer, integer, text) exists'
);
SELECT has_function('tally', 'acknowledge_crash', ARRAY[]::text[], 'function tally.acknowledge_crash() exists');
SELECT has_function(
    'tally', 'schedule_compactor', ARRAY['double precision', 'double precision', 'text', 'integer'],
    'function tally.schedule_compactor(double precision, double precision, text, integer) exists'
);
SELECT has_function(
    'tally', 'set_retention', ARRAY['text', 'text', 'interval'],
    'function tally.set_retention(text, text, interval) exists'
);
SELECT has_function(
    'tally', 'increment_counter', ARRAY['text', 'text', 'bigint', 'timestamp with time zone', 'text'],
    'function tally.increment_counter(text, text, bigint, timestamptz, text) exists'
);
SELECT has_function(
    'tally', 'increment_counters', ARRAY['text[]', 'text[]', 'bigint[]', 'timestamp with time zone[]', 'text[]'],
    'function tally.increment_counters(text[], text[], bigint[], timestamptz[], text[]) exists'
);
SELECT is(
    (SELECT count(*) FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace = 'tally'::regnamespace AND p.proname IN ('increment_counter', 'increment_counters')),
    2::bigint,
    'one signature each of increment_counter and increment_counters: no ambiguous overload'
);
SELECT has_function('tally', 'set_event_window', ARRAY['integer'], 'function tally.set_event_window(integer) exists');
SELECT has_function(
    'tally', '_claim_events', ARRAY['integer[]', 'text[]'], 'function tally._claim_events(integer[], text[]) exists'
);
SELECT has_function('tally', '_claim_days', ARRAY[]::text[], 'function tally._claim_days() exists');
SELECT has_table('tally', 'event_days', 'table tally.event_days exists');
SELECT has_function('tally', '_event_partitions', ARRAY[]::text[], 'function tally._event_partitions() exists'
);
SELECT has_function(
    'tally', 'top_keys', ARRAY['text', 'text', 'timestamp with time zone', 'integer'],
    'function tally.top_keys(text, text, timestamptz, integer) exists'
);
SELECT has_function('tally', 'unschedule_compactor', ARRAY[]::text[], 'function tally.unschedule_compactor() exists');
SELECT has_function(
    'tally', 'set_source', ARRAY['text', 'text', 'text'], 'function tally.set_source(text, text, text) exists'
);
SELECT has_function(
    'tally', 'check_drift', ARRAY['text', 'integer', 'text[]'],
    'function tally.check_drift(text, integer, text[]) exists'
);
SELECT has_function('tally', 'reconcile', ARRAY['text', 'text[]'], 'function tally.reconcile(text, text[]) exists');
SELECT has_function(
    'tally', '_internal_drift', ARRAY['integer', 'text'], 'function tally._internal_drift(integer, text) exists'
);
SELECT has_function(
    'tally', '_repair_internal', ARRAY['integer', 'text'], 'function tally._repair_internal(integer, text) exists'
);
SELECT has_function(
    'tally', '_record_drift', ARRAY['integer', 'integer', 'jsonb', 'boolean'],
    'function tally._record_drift(integer, integer, jsonb, boolean) exists'
);
SELECT has_function(
    'tally', '_detect_crash_reset', ARRAY[]::text[], 'function tally._detect_crash_reset() exists'
);
SELECT has_function(
    'tally', '_correct', ARRAY['text', 'text', 'bigint', 'text'],
    'function tally._correct(text, text, bigint, text) exists'
);
SELECT has_function(
    'tally', '_source_value', ARRAY['integer', 'text'], 'function tally._source_value(integer, text) exists'
);
SELECT has_function(
    'tally', '_sample_keys', ARRAY['integer', 'integer'], 'function tally._sample_keys(integer, integer) exists'
);
SELECT has_function(
    'tally', '_install_source', ARRAY['tally.counters', 'text', 'name', 'text'],
    'function tally._install_source(tally.counters, text, name, text) exists'
);
SELECT hasnt_function('tally', '_fold_into_rollups', 'tally._fold_into_rollups is gone (replaced by _fold_step)');
SELECT function_returns(
    'tally', '_fold_step', ARRAY['integer', 'bigint', 'integer', 'interval', 'integer', 'integer'], 'setof record',
    'tally._fold_step returns a set of rows'
);
SELECT function_returns('tally', '_fold', ARRAY['integer'], 'bigint', 'tally._fold returns bigint (deltas folded)');
SELECT function_returns(
    'tally', 'maintain', ARRAY['text'], 'setof record', 'tally.maintain returns a set of (step, detail) rows'
);
SELECT function_returns('tally', '_invisible_to_all', ARRAY['xid8'], 'boolean', 'tally._invisible_to_all returns boolean');
SELECT function_returns('tally', 'set_retention', ARRAY['text', 'text', 'interval'], 'void', 'tally.set_retention returns void');

-- Security
SELECT results_eq(
    $$SELECT p.proname::text COLLATE "default", p.prosecdef
      FROM pg_catalog.pg_proc AS p
      WHERE p.pronamespace = 'tally'::regnamespace
        AND p.proname IN ('acknowledge_crash', 'check_drift', 'compact_step', 'counter_series', 'counter_value',
                          'create_counter', 'drop_counter', 'increment_counter', 'increment_counters', 'maintain',
                          'reconcile', 'schedule_compactor', 'set_retention', 'top_keys', 'unschedule_compactor')
      ORDER BY 1$$,
    $$VALUES ('acknowledge_crash'::text, true), ('check_drift', true), ('compact_step', true),
             ('counter_series', true), ('counter_value', true), ('create_counter', true),
             ('drop_counter', true), ('increment_counter', true), ('increment_counters', true), ('maintain', true),
             ('reconcile', true), ('schedule_compactor', true), ('set_retention', true), ('top_keys', true),
             ('unschedule_compactor', true)$$,
    'these public functions of tally are SECURITY DEFINER (only compact and compact_loop are not: checked below)'
);
SELECT is_empty(
    $$SELECT p.oid::regprocedure
      FROM pg_catalog.pg_proc AS p
      WHERE p.pronamespace = 'tally'::regnamespace AND p.prosecdef
        AND p.proowner = (SELECT n.nspowner FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'tally')
        AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)$$,
    'every SECURITY DEFINER function of tally''s own (sources run as their registrants) has proconfig '
    'search_path=pg_catalog, pg_temp'
);
SELECT is(
    (SELECT count(*) FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace = 'tally'::regnamespace AND p.prosecdef),
    80::bigint,
    'the search_path check above covers the 80 SECURITY DEFINER functions (a new one changes this count)'
);
SELECT results_eq(
    $$SELECT p.proname::text COLLATE "default", p.prosecdef
      FROM pg_catalog.pg_proc AS p
      WHERE p.pronamespace = 'tally'::regnamespace
        AND p.proname IN ('set_source', '_internal_drift', '_repair_internal', '_record_drift', '_detect_crash_reset',
                          '_correct', '_source_value', '_sample_keys')
      ORDER BY 1$$,
    $$VALUES ('_correct'::text, true), ('_detect_crash_reset', true), ('_internal_drift', true),
             ('_record_drift', true), ('_repair_internal', true), ('_sample_keys', true), ('_source_value', true),
             ('set_source', true)$$,
    'set_source and the internal drift, correction and crash functions are SECURITY DEFINER'
);
SELECT is_definer(
    'tally', 'check_drift', ARRAY['text', 'integer', 'text[]'],
    'tally.check_drift is SECURITY DEFINER (the source query runs in a function owned by its registrant)'
);
SELECT is_definer(
    'tally', 'reconcile', ARRAY['text', 'text[]'],
    'tally.reconcile is SECURITY DEFINER (the source query runs in a function owned by its registrant)'
);
SELECT is_definer(
    'tally', '_install_source', ARRAY['tally.counters', 'text', 'name', 'text'],
    'tally._install_source is SECURITY DEFINER (it creates a function and gives it to the registrant)'
);
SELECT is_definer(
    'tally', '_fold_step', ARRAY['integer', 'bigint', 'integer', 'interval', 'integer', 'integer'],
    'tally._fold_step is SECURITY DEFINER (it writes rollups and truncates shards)'
);
SELECT is_definer('tally', '_apply_batch', ARRAY['regclass'], 'tally._apply_batch is SECURITY DEFINER');
SELECT is_definer('tally', '_flips', ARRAY[]::text[], 'tally._flips is SECURITY DEFINER');
SELECT is_definer(
    'tally', '_invisible_to_all', ARRAY['xid8'],
    'tally._invisible_to_all is SECURITY DEFINER (it reads every backend''s xmin)'
);
SELECT ok(
    (SELECT 'lock_timeout=200ms' = ANY (p.proconfig) FROM pg_catalog.pg_proc AS p
     WHERE p.oid = 'tally.maintain(text)'::regprocedure),
    'tally.maintain pins lock_timeout = 200ms as a function setting (restored on return)'
);
SELECT is(
    (SELECT pg_catalog.pg_get_expr(p.proargdefaults, 0) FROM pg_catalog.pg_proc AS p
     WHERE p.oid = 'tally.maintain(text)'::regprocedure),
    'current_setting(''search_path''::text)',
    'tally.maintain takes the caller''s search_path at the call site (to put it back after pg_partman)'
);
SELECT isnt_definer(
    'tally', '_fold', ARRAY['integer'],
    'tally._fold is SECURITY INVOKER (it restores the caller''s search_path)'
);
SELECT isnt_definer(
    'tally', 'compact', ARRAY['integer', 'integer', 'integer', 'integer'],
    'procedure tally.compact is SECURITY INVOKER (it commits between folds)'
);
SELECT isnt_definer(
    'tally', 'compact_loop', ARRAY['double precision', 'double precision', 'integer', 'integer', 'integer', 'integer'],
    'procedure tally.compact_loop is SECURITY INVOKER (it commits between folds)'
);

SELECT * FROM finish();
ROLLBACK;
