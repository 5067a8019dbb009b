-- Shape of schema tally: tables, columns, the 16 delta shards (0..7 UNLOGGED,
-- 8..15 logged), rollups partitioned by range with no default partition, the
-- view, and the pinned search_path of every SECURITY DEFINER function.
BEGIN;
SELECT plan(48);

SELECT has_schema('tally', 'schema tally exists');

-- Tables
SELECT has_table('tally', 'installed_extensions', 'table tally.installed_extensions exists');
SELECT has_table('tally', 'granularities', 'table tally.granularities exists');
SELECT has_table('tally', 'counters', 'table tally.counters exists');
SELECT has_table('tally', 'delta', 'table tally.delta exists');
SELECT has_table('tally', 'fold_batch', 'table tally.fold_batch exists');
SELECT has_table('tally', 'totals', 'table tally.totals exists');
SELECT has_table('tally', 'fold_runs', 'table tally.fold_runs exists');
SELECT has_table('tally', 'rollup_minute', 'table tally.rollup_minute exists');
SELECT has_table('tally', 'rollup_hour', 'table tally.rollup_hour exists');
SELECT has_table('tally', 'rollup_day', 'table tally.rollup_day exists');
SELECT has_table('tally', 'rollup_week', 'table tally.rollup_week exists');
SELECT has_table('tally', 'rollup_month', 'table tally.rollup_month exists');

-- Columns
SELECT columns_are(
    'tally', 'counters', ARRAY['id', 'name', 'granularities', 'durable', 'created_at'],
    'tally.counters has the expected columns'
);
SELECT col_type_is('tally', 'counters', 'granularities', 'text[]', 'counters.granularities is text[]');
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
SELECT results_eq(
    'SELECT name, ord, partition_interval FROM tally.granularities ORDER BY ord',
    $$VALUES ('minute'::text, 1::smallint, '1 day'::interval), ('hour', 2::smallint, '1 month'),
             ('day', 3::smallint, '1 year'), ('week', 4::smallint, '1 year'), ('month', 5::smallint, '1 year')$$,
    'tally.granularities lists minute..month with their partition intervals'
);

-- Delta shards
SELECT is_partitioned('tally', 'delta', 'tally.delta is partitioned');
SELECT is(
    (SELECT pg_catalog.pg_get_partkeydef('tally.delta'::regclass)),
    'LIST (shard)',
    'tally.delta is list-partitioned by shard'
);
SELECT partitions_are(
    'tally', 'delta',
    ARRAY(SELECT 'tally.delta_' || CASE WHEN i < 8 THEN 'fast_' || i ELSE 'durable_' || (i - 8) END
          FROM generate_series(0, 15) AS i),
    'tally.delta has exactly the 16 shards delta_fast_0..7 and delta_durable_0..7'
);
SELECT results_eq(
    $$SELECT substring(pg_catalog.pg_get_expr(c.relpartbound, c.oid) FROM '(\d+)')::int,
             c.relname::text COLLATE "default", c.relpersistence::text
      FROM pg_catalog.pg_inherits AS i
      JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'tally.delta'::regclass
      ORDER BY 1$$,
    $$SELECT i, CASE WHEN i < 8 THEN 'delta_fast_' || i ELSE 'delta_durable_' || (i - 8) END,
             CASE WHEN i < 8 THEN 'u' ELSE 'p' END
      FROM generate_series(0, 15) AS i ORDER BY i$$,
    'shard i is delta_fast_i (0..7) or delta_durable_(i-8) (8..15), with that partition bound'
);
SELECT is(
    (SELECT count(*) FILTER (WHERE c.relpersistence = 'u')
     FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'tally.delta'::regclass AND c.relname LIKE 'delta\_fast\_%'),
    8::bigint,
    'the 8 fast shards are UNLOGGED'
);
SELECT is(
    (SELECT count(*) FILTER (WHERE c.relpersistence = 'p')
     FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'tally.delta'::regclass AND c.relname LIKE 'delta\_durable\_%'),
    8::bigint,
    'the 8 durable shards are logged'
);
SELECT is(
    (SELECT relpersistence::text FROM pg_catalog.pg_class WHERE oid = 'tally.fold_batch'::regclass),
    'u',
    'the fold scratch table is UNLOGGED'
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
    ARRAY['shard', 'shard_table', 'durability', 'pending_deltas', 'oldest_pending_age', 'last_fold_at'],
    'tally.compactor_lag has the expected columns'
);

-- Functions
SELECT functions_are(
    'tally',
    ARRAY['_check_at', '_check_key', '_check_range', '_counter', '_ensure_partitions', '_fold',
          '_fold_into_rollups', '_fold_lock_key', '_granularity', '_pending', '_record_fold', 'compact', 'counter_series',
          'counter_value', 'create_counter', 'drop_counter', 'increment_counter', 'increment_counters',
          'top_keys'],
    'schema tally has exactly the expected functions and procedures'
);
SELECT is(
    (SELECT array_agg(p.proname::text ORDER BY p.proname)
     FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace = 'tally'::regnamespace AND p.proname !~ '^_' AND p.prokind = 'f'
       AND p.prosecdef),
    ARRAY['counter_series', 'counter_value', 'create_counter', 'drop_counter', 'increment_counter',
          'increment_counters', 'top_keys'],
    'every public function of tally is SECURITY DEFINER'
);
SELECT is_empty(
    $$SELECT p.oid::regprocedure
      FROM pg_catalog.pg_proc AS p
      WHERE p.pronamespace = 'tally'::regnamespace AND p.prosecdef
        AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)$$,
    'every SECURITY DEFINER function in tally has proconfig search_path=pg_catalog, pg_temp'
);
SELECT cmp_ok(
    (SELECT count(*) FROM pg_catalog.pg_proc AS p
     WHERE p.pronamespace = 'tally'::regnamespace AND p.prosecdef),
    '>=', 16::bigint,
    'the search_path check above covers the 16 SECURITY DEFINER functions'
);
SELECT isnt_definer(
    'tally', 'compact', ARRAY['integer', 'integer'],
    'procedure tally.compact is SECURITY INVOKER (it commits between folds)'
);

SELECT * FROM finish();
ROLLBACK;
