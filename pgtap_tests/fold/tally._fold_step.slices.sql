-- tally._fold_step with slices (parallel folds), inside one transaction: a
-- step of slice k of n folds only the deltas whose (counter, key) falls in
-- slice k (tally._slice), under the fold lock SHARED and its own bucket
-- locks; it records its place and its transaction in tally.shard_slices, not
-- in tally.shards; it reports 'waiting' while only other slices' deltas are
-- left, and reclaims and flips (under the fold lock exclusive) once every
-- slice is drained. Totals are exact whichever slice folds first. Refusals.
-- (Slices folding at once, in separate sessions, are tested by pytest:
-- test_parallel_folds.py.)
BEGIN;
SELECT plan(22);

SELECT tally.create_counter('sl');
UPDATE tally.shards SET drained_xid = NULL WHERE drained_xid IS NOT NULL;
CREATE TEMP TABLE sl_start ON COMMIT DROP AS SELECT gen AS g, flips FROM tally.write_gen;
CREATE TEMP TABLE sl_id ON COMMIT DROP AS SELECT id FROM tally.counters WHERE name = 'sl';
CREATE TEMP TABLE sl_keys ON COMMIT DROP AS
SELECT k::text AS key, tally._slice((SELECT id FROM sl_id), k::text, 2) AS slice
FROM generate_series(1, 200) AS k;

-- 1. The slicing itself
SELECT is(
    (SELECT count(*) FROM sl_keys WHERE slice NOT IN (0, 1)), 0::bigint,
    'tally._slice(counter, key, 2) is 0 or 1 for every key'
);
SELECT ok(
    (SELECT count(*) FILTER (WHERE slice = 0) BETWEEN 60 AND 140 FROM sl_keys),
    'two slices split 200 keys roughly evenly (a hash, not a range)'
);
SELECT is(
    (SELECT count(*) FROM sl_keys WHERE tally._slice((SELECT id FROM sl_id), key, 4) % 2 <> slice), 0::bigint,
    'slice k of 4 lies inside slice k % 2 of 2: slicings of different counts nest (they share hash buckets)'
);
SELECT is(
    (SELECT count(DISTINCT tally._slice(c, 'same key', 64)) FROM generate_series(1, 40) AS c) > 1, true,
    'the hash is seeded by the counter: one key falls in different slices for different counters'
);

-- 2. Folding slice 0, then slice 1
SELECT is((SELECT count(*) FROM tally.delta), 0::bigint, 'precondition: nothing is pending');
SELECT tally.increment_counters(
    array_fill('sl'::text, ARRAY[400]), ARRAY(SELECT key FROM sl_keys, generate_series(1, 2) ORDER BY 1),
    array_fill(3::bigint, ARRAY[400]));
SELECT results_eq(
    'SELECT s.action FROM tally._fold_step(1000, NULL, 1, NULL, 0, 2) AS s',
    $$VALUES ('flipped'::text)$$,
    'slice 0 of 2 with its slice empty in the inactive generation (and the whole generation empty): it flips'
);
SELECT results_eq(
    'SELECT s.action, s.folded FROM tally._fold_step(1000, NULL, 1, NULL, 0, 2) AS s',
    $$SELECT 'folded'::text, 2 * count(*) FROM sl_keys WHERE slice = 0$$,
    'slice 0 of 2 folds exactly the deltas of its keys'
);
SELECT ok(
    EXISTS (SELECT FROM pg_catalog.pg_locks AS l
            WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.mode = 'ShareLock' AND l.granted
              AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = tally._fold_lock_key()),
    'it holds the fold lock SHARED (other slices fold beside it)'
);
SELECT is(
    (SELECT count(*) FROM pg_catalog.pg_locks AS l
     WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.mode = 'ExclusiveLock' AND l.granted
       AND l.objsubid = 2 AND l.classid = 736175647),
    (tally._slice_buckets() / 2)::bigint,
    'and, exclusive, the hash buckets of its slice (half of them)'
);
SELECT results_eq(
    'SELECT key, value FROM tally.totals WHERE counter_id = (SELECT id FROM sl_id) ORDER BY 1',
    'SELECT key, 6::bigint FROM sl_keys WHERE slice = 0 ORDER BY 1',
    'the totals of slice 0''s keys are exact; slice 1''s keys are untouched'
);
SELECT results_eq(
    'SELECT key FROM tally.delta WHERE counter_id = (SELECT id FROM sl_id) GROUP BY key ORDER BY 1',
    'SELECT key FROM sl_keys WHERE slice = 1 ORDER BY 1',
    'slice 1''s deltas are still pending'
);
SELECT results_eq(
    $$SELECT x.slices::int, x.slice::int, x.deleted_xid = pg_current_xact_id()
      FROM tally.shard_slices AS x JOIN tally.shards AS s USING (shard_table)
      WHERE s.gen = 1 - (SELECT gen FROM tally.write_gen)$$,
    $$VALUES (2, 0, true)$$,
    'the slice''s place and deleting transaction are in its own row of tally.shard_slices'
);
SELECT is(
    (SELECT count(*) FROM tally.shards WHERE drained_xid IS NOT NULL), 0::bigint,
    'tally.shards is left alone by a slice fold (no row shared by slices is written)'
);
SELECT results_eq(
    $$SELECT slice::int, slices::int, deltas FROM tally.fold_runs WHERE mode = 'delete' ORDER BY id DESC LIMIT 1$$,
    $$SELECT 0, 2, 2 * count(*) FROM sl_keys WHERE slice = 0$$,
    'the fold is recorded with its slice'
);
SELECT results_eq(
    'SELECT s.action, s.folded FROM tally._fold_step(1000, NULL, 1, NULL, 0, 2) AS s',
    $$VALUES ('waiting'::text, 0::bigint)$$,
    'slice 0 again: only slice 1''s deltas are left, so it waits (no flip while any slice holds deltas)'
);
SELECT results_eq(
    'SELECT s.action, s.folded FROM tally._fold_step(1000, NULL, 1, NULL, 1, 2) AS s',
    $$SELECT 'folded'::text, 2 * count(*) FROM sl_keys WHERE slice = 1$$,
    'slice 1 of 2 folds exactly the rest'
);
SELECT results_eq(
    'SELECT s.action, s.flips FROM tally._fold_step(1000, NULL, 1, NULL, 1, 2) AS s',
    'SELECT ''flipped''::text, flips + 2 FROM sl_start',
    'every slice drained: the step reclaims and flips'
);
SELECT results_eq(
    'SELECT key, value FROM tally.totals WHERE counter_id = (SELECT id FROM sl_id) ORDER BY 1',
    'SELECT key, 6::bigint FROM sl_keys ORDER BY 1',
    'every total is exact'
);

-- 3. Refusals
SELECT throws_ok('SELECT * FROM tally._fold_step(10, NULL, 1, NULL, 0, 0)', '22023', NULL, '0 slices are refused');
SELECT throws_ok(
    'SELECT * FROM tally._fold_step(10, NULL, 1, NULL, 0, 65)', '22023', NULL,
    'more slices than hash buckets are refused'
);
SELECT throws_ok(
    'SELECT * FROM tally.compact_step(10, NULL, 1, 5, NULL, 2, 2)', '22023', NULL,
    'compact_step: slice 2 of 2 is refused (slices count from 0)'
);
SELECT throws_ok(
    'SELECT * FROM tally.compact_step(10, NULL, 1, 5, NULL, -1, 2)', '22023', NULL,
    'compact_step: a negative slice is refused'
);

SELECT * FROM finish();
ROLLBACK;
