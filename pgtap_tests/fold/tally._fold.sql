-- tally._fold: folds EVERYTHING pending (both delta generations) in the
-- caller's transaction, stepping tally._fold_step until idle, and returns the
-- number of deltas folded; moves them into totals and every granularity the
-- counter keeps (UTC buckets), creates missing rollup partitions on demand
-- (never a default partition), accumulates across folds, leaves the caller's
-- settings alone; p_limit only bounds each step; in one transaction every
-- step folds in delete mode and nothing is TRUNCATEd (the drains are not
-- committed; truncation across transactions is tested by pytest); refusals.
BEGIN;
SELECT plan(40);

-- The caller's settings, to check a fold leaves them alone (a lock_timeout
-- of its own, to tell it from any value a step might set).
SET LOCAL lock_timeout = '4321ms';
CREATE TEMP TABLE saved_settings ON COMMIT DROP AS
SELECT current_setting('search_path') AS search_path, current_setting('lock_timeout') AS lock_timeout;

-- Buckets are UTC whatever the session time zone.
SET LOCAL timezone = 'America/Los_Angeles';

-- This file is about buckets, not retention: its increments are in 2024 (and
-- two years back), older than the default retention of minute and hour
-- buckets, so keep every bucket here (rolled back with the test).
SELECT tally.set_retention(NULL, 'minute', NULL);
SELECT tally.set_retention(NULL, 'hour', NULL);

-- A shard drained by an earlier, committed transaction of this database would
-- be reclaimed (TRUNCATEd) by the folds below; this file is about one
-- transaction, so forget such drains (rolled back with the test).
UPDATE tally.shards SET drained_xid = NULL WHERE drained_xid IS NOT NULL;

SELECT tally.create_counter('f_all');
SELECT tally.create_counter('f_day', '{day}', true);
SELECT tally.create_counter('f_none', '{}');

-- A timestamp two years back needs a minute (daily) and an hour (monthly)
-- partition that pg_partman did not premake.
CREATE TEMP TABLE f_old ON COMMIT DROP AS
SELECT now() - interval '2 years' AS at,
       'rollup_minute_p' || to_char((now() - interval '2 years') AT TIME ZONE 'UTC', 'YYYY_MM_DD') AS minute_part,
       'rollup_hour_p' || to_char((now() - interval '2 years') AT TIME ZONE 'UTC', 'YYYY_MM') AS hour_part;
SELECT hasnt_table('tally', (SELECT minute_part FROM f_old), 'precondition: no minute partition two years back');
SELECT hasnt_table('tally', (SELECT hour_part FROM f_old), 'precondition: no hour partition two years back');

SELECT tally.increment_counters(
    '{f_all,f_all,f_all,f_all,f_all,f_day,f_none}',
    '{k,k,k,old,nye,k,k}',
    '{3,4,5,1,2,2,9}',
    ARRAY[
        '2024-01-03 10:30:15+00', '2024-01-03 10:30:45+00', '2024-01-03 11:00:00+00',
        (SELECT at FROM f_old),
        '2023-01-01 12:00:00+00',  -- a Sunday: its week bucket 2022-12-26 lies in the partition of 2022
        '2024-01-03 10:30:00+00', now()
    ]
);
CREATE TEMP TABLE f_pending ON COMMIT DROP AS SELECT count(*) AS n FROM tally.delta;

-- The fold
CREATE TEMP TABLE f_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
CREATE TEMP TABLE f_after_fold ON COMMIT DROP AS
SELECT current_setting('search_path') AS search_path, current_setting('TimeZone') AS timezone,
       current_setting('lock_timeout') AS lock_timeout;

SELECT is((SELECT n FROM f_fold), (SELECT n FROM f_pending), 'the fold returns the number of deltas it folded');
SELECT is((SELECT count(*) FROM tally.delta), 0::bigint, 'the folded deltas were moved out of the shards');
SELECT is((SELECT count(*) FROM pg_temp.tally_fold_batch), 0::bigint, 'the session''s scratch table is empty after the fold');
SELECT results_eq(
    $$SELECT c.name, t.key, t.value FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id
      WHERE c.name LIKE 'f\_%' ORDER BY 1, 2$$,
    $$VALUES ('f_all'::text, 'k'::text, 12::bigint), ('f_all', 'nye', 2), ('f_all', 'old', 1),
             ('f_day', 'k', 2), ('f_none', 'k', 9)$$,
    'totals hold the sum per (counter, key) for every counter, whatever its granularities'
);
SELECT results_eq(
    $$SELECT r.key, r.bucket, r.value FROM tally.rollup_minute AS r JOIN tally.counters AS c ON c.id = r.counter_id
      WHERE c.name = 'f_all' AND r.key IN ('k', 'nye') ORDER BY 2$$,
    $$VALUES ('nye'::text, '2023-01-01 12:00+00'::timestamptz, 2::bigint),
             ('k', '2024-01-03 10:30+00', 7), ('k', '2024-01-03 11:00+00', 5)$$,
    'rollup_minute: one row per UTC minute'
);
SELECT results_eq(
    $$SELECT r.bucket, r.value FROM tally.rollup_hour AS r JOIN tally.counters AS c ON c.id = r.counter_id
      WHERE c.name = 'f_all' AND r.key = 'k' ORDER BY 1$$,
    $$VALUES ('2024-01-03 10:00+00'::timestamptz, 7::bigint), ('2024-01-03 11:00+00', 5)$$,
    'rollup_hour: one row per UTC hour'
);
SELECT results_eq(
    $$SELECT c.name, r.key, r.bucket, r.value FROM tally.rollup_day AS r JOIN tally.counters AS c ON c.id = r.counter_id
      WHERE c.name LIKE 'f\_%' AND r.key IN ('k', 'nye') ORDER BY 1, 3$$,
    $$VALUES ('f_all'::text, 'nye'::text, '2023-01-01 00:00+00'::timestamptz, 2::bigint),
             ('f_all', 'k', '2024-01-03 00:00+00', 12), ('f_day', 'k', '2024-01-03 00:00+00', 2)$$,
    'rollup_day: one row per UTC day'
);
SELECT results_eq(
    $$SELECT r.key, r.bucket, r.value FROM tally.rollup_week AS r JOIN tally.counters AS c ON c.id = r.counter_id
      WHERE c.name = 'f_all' AND r.key IN ('k', 'nye') ORDER BY 2$$,
    $$VALUES ('nye'::text, '2022-12-26 00:00+00'::timestamptz, 2::bigint), ('k', '2024-01-01 00:00+00', 12)$$,
    'rollup_week: one row per ISO week, starting on Monday'
);
SELECT results_eq(
    $$SELECT r.key, r.bucket, r.value FROM tally.rollup_month AS r JOIN tally.counters AS c ON c.id = r.counter_id
      WHERE c.name = 'f_all' AND r.key IN ('k', 'nye') ORDER BY 2$$,
    $$VALUES ('nye'::text, '2023-01-01 00:00+00'::timestamptz, 2::bigint), ('k', '2024-01-01 00:00+00', 12)$$,
    'rollup_month: one row per UTC month'
);
SELECT is_empty(
    $$SELECT FROM (SELECT counter_id FROM tally.rollup_minute UNION ALL SELECT counter_id FROM tally.rollup_hour
                   UNION ALL SELECT counter_id FROM tally.rollup_week
                   UNION ALL SELECT counter_id FROM tally.rollup_month) AS r
      JOIN tally.counters AS c ON c.id = r.counter_id WHERE c.name = 'f_day'$$,
    'a counter keeping only days gets no minute, hour, week or month rows'
);
SELECT is_empty(
    $$SELECT FROM (SELECT counter_id FROM tally.rollup_minute UNION ALL SELECT counter_id FROM tally.rollup_hour
                   UNION ALL SELECT counter_id FROM tally.rollup_day UNION ALL SELECT counter_id FROM tally.rollup_week
                   UNION ALL SELECT counter_id FROM tally.rollup_month) AS r
      JOIN tally.counters AS c ON c.id = r.counter_id WHERE c.name = 'f_none'$$,
    'a counter keeping no granularity gets only its total'
);

-- Partitions created on demand, no default partition
SELECT has_table('tally', (SELECT minute_part FROM f_old), 'the minute partition two years back was created by the fold');
SELECT has_table('tally', (SELECT hour_part FROM f_old), 'the hour partition two years back was created by the fold');
SELECT results_eq(
    $$SELECT r.tableoid, r.bucket, r.value FROM tally.rollup_minute AS r JOIN tally.counters AS c ON c.id = r.counter_id
      WHERE c.name = 'f_all' AND r.key = 'old'$$,
    $$SELECT format('tally.%I', minute_part)::regclass::oid, date_trunc('minute', at, 'UTC'), 1::bigint FROM f_old$$,
    'the old increment''s minute row is in that partition'
);
SELECT is(
    (SELECT r.tableoid FROM tally.rollup_week AS r JOIN tally.counters AS c ON c.id = r.counter_id
     WHERE c.name = 'f_all' AND r.key = 'nye'),
    'tally.rollup_week_p2022'::regclass::oid,
    'the week bucket 2022-12-26 is in the 2022 partition, created by the fold'
);
SELECT is_empty(
    $$SELECT pt.partrelid::regclass FROM pg_catalog.pg_partitioned_table AS pt
      JOIN pg_catalog.pg_class AS c ON c.oid = pt.partrelid
      WHERE c.relnamespace = 'tally'::regnamespace AND pt.partdefid <> 0$$,
    'no default partition exists after the fold'
);
SELECT hasnt_table('tally', 'rollup_minute_default', 'the fold created no default partition');

-- The fold must not change the caller's settings.
SELECT is((SELECT timezone FROM f_after_fold), 'America/Los_Angeles', 'the fold leaves the session time zone as it was');
-- pg_partman 4.7's create_partition_time() restores search_path with a
-- session-level set_config(); tally._fold puts the caller's value back.
SELECT is(
    (SELECT search_path FROM f_after_fold), (SELECT search_path FROM saved_settings),
    'the fold leaves the session search_path as it was'
);
SELECT is(
    (SELECT lock_timeout FROM f_after_fold), (SELECT lock_timeout FROM saved_settings),
    'the fold leaves the session lock_timeout as it was'
);

-- Nothing pending: nothing to do
CREATE TEMP TABLE f_fold2 ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is((SELECT n FROM f_fold2), 0::bigint, 'a fold with nothing pending returns 0');

-- Folds accumulate into existing totals and buckets
SELECT tally.increment_counter('f_all', 'k', 1, '2024-01-03 10:30:59+00');
CREATE TEMP TABLE f_fold3 ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is((SELECT n FROM f_fold3), 1::bigint, 'the next fold folds the new delta');
SELECT results_eq(
    $$SELECT (SELECT t.value FROM tally.totals AS t WHERE t.counter_id = c.id AND t.key = 'k'),
             (SELECT r.value FROM tally.rollup_minute AS r
              WHERE r.counter_id = c.id AND r.key = 'k' AND r.bucket = '2024-01-03 10:30+00'),
             (SELECT r.value FROM tally.rollup_week AS r
              WHERE r.counter_id = c.id AND r.key = 'k' AND r.bucket = '2024-01-01 00:00+00')
      FROM tally.counters AS c WHERE c.name = 'f_all'$$,
    $$VALUES (13::bigint, 8::bigint, 13::bigint)$$,
    'a later fold adds to the existing total and buckets'
);

-- p_limit bounds each step, not the fold: a fold still folds everything,
-- in steps of at most p_limit deltas.
SELECT tally.increment_counters('{f_all,f_all,f_all}', '{lim,lim,lim}', '{1,10,100}');
CREATE TEMP TABLE f_runs_before ON COMMIT DROP AS SELECT coalesce(max(id), 0) AS id FROM tally.fold_runs;
CREATE TEMP TABLE f_lim_shard ON COMMIT DROP AS
SELECT DISTINCT d.tableoid::regclass AS shard_table, pg_relation_filenode(d.tableoid) AS filenode
FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id WHERE c.name = 'f_all' AND d.key = 'lim';
CREATE TEMP TABLE f_fold4 ON COMMIT DROP AS SELECT tally._fold(2) AS n;
SELECT is((SELECT n FROM f_fold4), 3::bigint, 'a fold with p_limit 2 still folds all 3 pending deltas');
SELECT is((SELECT count(*) FROM tally.delta), 0::bigint, 'nothing stays pending');
SELECT results_eq(
    $$SELECT deltas, mode FROM tally.fold_runs WHERE id > (SELECT id FROM f_runs_before) ORDER BY id$$,
    $$VALUES (2::bigint, 'delete'::text), (1, 'delete')$$,
    'it took steps of at most p_limit: 2 deltas, then the last one, both in delete mode (no truncate row)'
);
SELECT results_eq(
    $$SELECT s.drained_xid = pg_current_xact_id(), pg_relation_filenode(s.shard_table) = f.filenode
      FROM tally.shards AS s JOIN f_lim_shard AS f USING (shard_table)$$,
    $$VALUES (true, true)$$,
    'the shard is marked drained by this transaction and not TRUNCATEd within it (same relfilenode)'
);
SELECT is(tally.counter_value('f_all', 'lim'), 111::bigint, 'the stepwise fold changes no counter_value');

-- Deltas pending in both generations: one step flips (nothing is left in the
-- inactive generation), so the first delta is in the now-inactive generation
-- and the second one lands in the new active one.
SELECT tally.increment_counter('f_all', 'gens', 1);
CREATE TEMP TABLE f_flip ON COMMIT DROP AS SELECT * FROM tally._fold_step(100000);
SELECT tally.increment_counter('f_all', 'gens', 2);
SELECT results_eq(
    $$SELECT (SELECT action FROM f_flip), count(DISTINCT d.shard / 8)
      FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id WHERE c.name = 'f_all'$$,
    $$VALUES ('flipped'::text, 2::bigint)$$,
    'precondition: deltas are pending in both generations'
);
CREATE TEMP TABLE f_fold5 ON COMMIT DROP AS SELECT tally._fold() AS n;
SELECT is((SELECT n FROM f_fold5), 2::bigint, 'a fold folds the deltas of both generations');
SELECT is((SELECT count(*) FROM tally.delta), 0::bigint, 'nothing of either generation stays pending');
SELECT is(
    (SELECT t.value FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id
     WHERE c.name = 'f_all' AND t.key = 'gens'),
    3::bigint,
    'both generations'' deltas are in the total'
);
SELECT is_empty(
    $$SELECT FROM tally.fold_runs WHERE mode = 'truncate' AND started_at >= now()$$,
    'no fold of this transaction reclaimed a shard by TRUNCATE: its own drains are not committed'
);

-- Refusals
SELECT throws_ok(
    'SELECT tally._fold(0)',
    '22023', 'tally._fold_step: limit 0 must be a positive number of deltas',
    'limit 0 is refused with invalid_parameter_value'
);
SELECT throws_ok('SELECT tally._fold(-1)', '22023', NULL, 'a negative limit is refused');
SELECT throws_ok(
    'SELECT tally._fold(NULL)',
    '22023', 'tally._fold_step: limit NULL must be a positive number of deltas',
    'a NULL limit is refused'
);

-- The compactor (PL/Python, run by its invoker, who may not call internal
-- functions) holds its own copy of the fold lock key, in its module.
SELECT ok(
    (SELECT p.prosrc LIKE '%' || E'\nFOLD_LOCK = ' || tally._fold_lock_key() || E'\n%'
     FROM pg_catalog.pg_proc AS p
     WHERE p.oid = 'tally._compactor()'::regprocedure),
    'the compactor module''s FOLD_LOCK is tally._fold_lock_key()'
);
SELECT ok(
    (SELECT p.prosrc LIKE '%' || E'\nSLICE_BUCKETS = ' || tally._slice_buckets() || E'\n%'
     FROM pg_catalog.pg_proc AS p
     WHERE p.oid = 'tally._compactor()'::regprocedure),
    'the compactor module''s SLICE_BUCKETS is tally._slice_buckets()'
);

SELECT * FROM finish();
ROLLBACK;
