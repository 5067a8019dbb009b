-- tally.compactor_lag: one row per delta shard (16: two generations of 4 fast
-- and 4 durable shards), its durability, whether its generation is the active
-- one (tally.write_gen.gen), pending deltas and their age, and the end of the
-- last successful fold.
BEGIN;
SELECT plan(14);

CREATE TEMP TABLE lag_gen ON COMMIT DROP AS SELECT gen, flips FROM tally.write_gen;

SELECT is((SELECT count(*) FROM tally.compactor_lag), 16::bigint, 'compactor_lag has one row per shard: 16');
SELECT results_eq(
    'SELECT shard, shard_table COLLATE "default", durability FROM tally.compactor_lag',
    $$SELECT i::smallint,
             format('delta_g%s_%s_%s', i / 8, CASE WHEN i % 8 < 4 THEN 'fast' ELSE 'durable' END, i % 4),
             CASE WHEN i % 8 < 4 THEN 'fast' ELSE 'durable' END
      FROM generate_series(0, 15) AS i ORDER BY i$$,
    'shard gen*8+i is delta_g{gen}_fast_i, shard gen*8+4+i delta_g{gen}_durable_i, in shard order'
);
SELECT results_eq(
    'SELECT shard, active FROM tally.compactor_lag',
    $$SELECT i::smallint, i / 8 = (SELECT gen FROM lag_gen) FROM generate_series(0, 15) AS i ORDER BY i$$,
    'active is true exactly for the shards of the generation in tally.write_gen'
);
SELECT results_eq(
    $$SELECT count(*) FILTER (WHERE active), count(*) FILTER (WHERE active AND durability = 'fast'),
             count(*) FILTER (WHERE active AND shard_table LIKE format('delta\_g%s\_%%', (SELECT gen FROM lag_gen)))
      FROM tally.compactor_lag$$,
    $$VALUES (8::bigint, 4::bigint, 8::bigint)$$,
    '8 shards are active (4 fast, 4 durable), all named delta_g{gen}_*'
);

-- Pending counts: writers append to this backend's shards of the active generation.
CREATE TEMP TABLE lag_before ON COMMIT DROP AS SELECT shard, pending_deltas FROM tally.compactor_lag;
SELECT tally.create_counter('lag_fast');
SELECT tally.create_counter('lag_durable', '{}', true);
SELECT tally.increment_counters('{lag_fast,lag_fast,lag_fast}', '{a,b,a}', '{1,1,1}');
SELECT tally.increment_counters('{lag_durable,lag_durable}', '{a,a}', '{5,5}');
CREATE TEMP TABLE lag_shards ON COMMIT DROP AS
SELECT gen * 8 + pg_backend_pid() % 3 AS fast, gen * 8 + 4 + pg_backend_pid() % 3 AS durable FROM lag_gen;
SELECT results_eq(
    'SELECT shard, pending_deltas FROM tally.compactor_lag ORDER BY shard',
    $$SELECT b.shard, b.pending_deltas + CASE b.shard WHEN (SELECT fast FROM lag_shards) THEN 3
                                                    WHEN (SELECT durable FROM lag_shards) THEN 2 ELSE 0 END
      FROM lag_before AS b ORDER BY b.shard$$,
    'pending_deltas counts the deltas of each shard: 3 in this backend''s active fast shard, 2 in its durable one'
);
SELECT results_eq(
    $$SELECT shard, pending_deltas FROM tally.compactor_lag ORDER BY shard$$,
    $$SELECT i::smallint, (SELECT count(*) FROM tally.delta AS d WHERE d.shard = i)
      FROM generate_series(0, 15) AS i ORDER BY i$$,
    'pending_deltas equals the rows in each shard'
);
SELECT is(
    (SELECT oldest_pending_age FROM tally.compactor_lag WHERE shard = (SELECT durable FROM lag_shards)),
    now() - (SELECT min(written_at) FROM tally.delta WHERE shard = (SELECT durable FROM lag_shards)),
    'oldest_pending_age is now() minus the oldest written_at of the shard'
);
SELECT is_empty(
    'SELECT shard FROM tally.compactor_lag WHERE pending_deltas = 0 AND oldest_pending_age IS NOT NULL',
    'a shard with nothing pending has no oldest_pending_age'
);

-- After a fold nothing is pending, and the generations have flipped once.
CREATE TEMP TABLE lag_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is(
    (SELECT sum(pending_deltas) FROM tally.compactor_lag), 0::numeric,
    'after a fold no shard has pending deltas'
);
SELECT results_eq(
    'SELECT shard, active FROM tally.compactor_lag',
    $$SELECT i::smallint, i / 8 = 1 - (SELECT gen FROM lag_gen) FROM generate_series(0, 15) AS i ORDER BY i$$,
    'the fold flipped the generations: active is now true for the other 8 shards'
);

-- last_fold_at: the end of the last successful fold recorded in fold_runs
SELECT is(
    (SELECT DISTINCT last_fold_at FROM tally.compactor_lag),
    (SELECT max(finished_at) FROM tally.fold_runs WHERE outcome = 'ok'),
    'last_fold_at is the latest finished_at of a successful fold (recorded by the fold''s steps), on every row'
);
SELECT tally._record_fold(now(), 5, 1, 'ok', NULL);
CREATE TEMP TABLE lag_last_ok ON COMMIT DROP AS SELECT DISTINCT last_fold_at AS t FROM tally.compactor_lag;
SELECT is(
    (SELECT t FROM lag_last_ok),
    (SELECT finished_at FROM tally.fold_runs ORDER BY id DESC LIMIT 1),
    'a later successful fold moves last_fold_at to its finished_at'
);
SELECT tally._record_fold(now(), 0, 5, 'failed', '40P01: deadlock detected');
SELECT is(
    (SELECT DISTINCT last_fold_at FROM tally.compactor_lag), (SELECT t FROM lag_last_ok),
    'a failed fold does not move last_fold_at'
);
SELECT cmp_ok(
    (SELECT max(finished_at) FROM tally.fold_runs), '>', (SELECT t FROM lag_last_ok),
    'even though the failed fold finished later'
);

SELECT * FROM finish();
ROLLBACK;
