-- tally.counter_status: one row per counter, by name: durability,
-- granularities, pending deltas and the age of the oldest, created at,
-- and whether this node sees every pending delta (on a primary, always);
-- readable by tally_reader, who may not read tally.counters or the shards.
BEGIN;
SELECT plan(10);

-- Shape
SELECT has_view('tally', 'counter_status', 'view tally.counter_status exists');
SELECT results_eq(
    $$SELECT a.attname::text COLLATE "default", format_type(a.atttypid, a.atttypmod)
      FROM pg_catalog.pg_attribute AS a
      WHERE a.attrelid = 'tally.counter_status'::regclass AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum$$,
    $$VALUES ('counter'::text, 'text'::text), ('durability', 'text'), ('granularities', 'text[]'),
             ('pending_deltas', 'bigint'), ('oldest_pending_age', 'interval'),
             ('created_at', 'timestamp with time zone'), ('pending_complete', 'boolean')$$,
    'tally.counter_status columns and types'
);

-- A fresh install: no counter, no row.
SELECT is_empty('SELECT FROM tally.counter_status', 'a fresh install: tally.counter_status is empty');

-- One row per counter, by name, with its pending deltas.
SELECT tally.create_counter('cs_views');
SELECT tally.create_counter('cs_followers', '{day}', true);
SELECT tally.increment_counters('{cs_views,cs_views,cs_views}', '{a,b,a}', '{1,1,5}');
UPDATE tally.delta SET written_at = now() - interval '30 seconds'
WHERE key = 'b' AND counter_id = (SELECT id FROM tally.counters WHERE name = 'cs_views');
SELECT results_eq(
    'SELECT counter, durability, granularities, pending_deltas, oldest_pending_age, created_at FROM tally.counter_status',
    $$VALUES ('cs_followers'::text, 'durable'::text, '{day}'::text[], 0::bigint, NULL::interval, now()),
             ('cs_views', 'fast', '{minute,hour,day,week,month}', 3, interval '30 seconds', now())$$,
    'by name: durability, granularities, 3 pending deltas whose oldest waits 30 s; none pending: 0 and NULL'
);
SELECT is(
    (SELECT array_agg(pending_complete) FROM tally.counter_status), '{t,t}',
    'on a primary every pending delta is seen (a hot standby: false for fast counters)'
);

-- Folded: nothing pending.
CREATE TEMP TABLE cs_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is((SELECT n FROM cs_fold), 3::bigint, 'the fold takes the 3 deltas');
SELECT results_eq(
    'SELECT counter, pending_deltas, oldest_pending_age FROM tally.counter_status',
    $$VALUES ('cs_followers'::text, 0::bigint, NULL::interval), ('cs_views', 0, NULL)$$,
    'after the fold: 0 pending, no oldest'
);

-- The reader sees it, and still not the tables under it.
GRANT USAGE ON SCHEMA tap TO tally_reader;
SET LOCAL ROLE tally_reader;
SELECT results_eq(
    'SELECT counter, durability FROM tally.counter_status',
    $$VALUES ('cs_followers'::text, 'durable'::text), ('cs_views', 'fast')$$,
    'tally_reader reads tally.counter_status'
);
SELECT throws_ok('SELECT count(*) FROM tally.counters', '42501', NULL, 'tally_reader still may not read tally.counters');
SELECT throws_ok('SELECT count(*) FROM tally.delta', '42501', NULL, 'tally_reader still may not read tally.delta');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
