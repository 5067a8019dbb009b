-- tally.compactor_lag: one row per delta shard (16), its durability, pending
-- deltas and their age, and the end of the last successful fold.
BEGIN;
SELECT plan(10);


SELECT is((SELECT count(*) FROM tally.compactor_lag), 16::bigint, 'compactor_lag has one row per shard: 16');
SELECT results_eq(
    'SELECT shard, shard_table COLLATE "default", durability FROM tally.compactor_lag',
    $$SELECT i::smallint, CASE WHEN i < 8 THEN 'delta_fast_' || i ELSE 'delta_durable_' || (i - 8) END,
             CASE WHEN i < 8 THEN 'fast' ELSE 'durable' END
      FROM generate_series(0, 15) AS i ORDER BY i$$,
    'shards 0..7 are the fast tables, 8..15 the durable ones, in shard order'
);

-- Pending counts
CREATE TEMP TABLE lag_before ON COMMIT DROP AS SELECT shard, pending_deltas FROM tally.compactor_lag;
SELECT tally.create_counter('lag_fast');
SELECT tally.create_counter('lag_durable', '{}', true);
SELECT tally.increment_counters('{lag_fast,lag_fast,lag_fast}', '{a,b,a}', '{1,1,1}');
SELECT tally.increment_counters('{lag_durable,lag_durable}', '{a,a}', '{5,5}');
SELECT results_eq(
    'SELECT shard, pending_deltas FROM tally.compactor_lag ORDER BY shard',
    $$SELECT b.shard, b.pending_deltas + CASE b.shard WHEN pg_backend_pid() % 8 THEN 3
                                                    WHEN pg_backend_pid() % 8 + 8 THEN 2 ELSE 0 END
      FROM lag_before AS b ORDER BY b.shard$$,
    'pending_deltas counts the deltas of each shard: 3 in this backend''s fast shard, 2 in its durable one'
);
SELECT results_eq(
    $$SELECT shard, pending_deltas FROM tally.compactor_lag ORDER BY shard$$,
    $$SELECT i::smallint, (SELECT count(*) FROM tally.delta AS d WHERE d.shard = i)
      FROM generate_series(0, 15) AS i ORDER BY i$$,
    'pending_deltas equals the rows in each shard'
);
SELECT is(
    (SELECT oldest_pending_age FROM tally.compactor_lag WHERE shard = pg_backend_pid() % 8 + 8),
    now() - (SELECT min(written_at) FROM tally.delta WHERE shard = pg_backend_pid() % 8 + 8),
    'oldest_pending_age is now() minus the oldest written_at of the shard'
);
SELECT is_empty(
    'SELECT shard FROM tally.compactor_lag WHERE pending_deltas = 0 AND oldest_pending_age IS NOT NULL',
    'a shard with nothing pending has no oldest_pending_age'
);

-- After a fold nothing is pending.
CREATE TEMP TABLE lag_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is(
    (SELECT sum(pending_deltas) FROM tally.compactor_lag), 0::numeric,
    'after a fold no shard has pending deltas'
);

-- last_fold_at: the end of the last successful fold recorded in fold_runs
SELECT tally._record_fold(now(), 5, 1, 'ok', NULL);
SELECT is(
    (SELECT DISTINCT last_fold_at FROM tally.compactor_lag),
    (SELECT max(finished_at) FROM tally.fold_runs WHERE outcome = 'ok'),
    'last_fold_at is the latest finished_at of a successful fold, on every row'
);
CREATE TEMP TABLE lag_last_ok ON COMMIT DROP AS SELECT DISTINCT last_fold_at AS t FROM tally.compactor_lag;
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
