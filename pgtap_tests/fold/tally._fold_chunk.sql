-- tally._fold_chunk reads its chunk, not its shard: a step that folds a
-- chunk of p_limit deltas out of a shard holding many more fetches the
-- chunk's rows by their row ids (a TID scan) and scans the shard only for
-- the chunk's row ids (a TID range scan from where the last chunk ended)
-- and for a row or two (is there a delta to fold, is one left). A
-- sequential scan of the whole shard per chunk would make a backlog of n
-- deltas cost n^2 / p_limit row reads.
-- Counted with pg_stat_xact_user_tables (this transaction's reads), for a
-- plain step and for a slice step. Every folded value is exact.
BEGIN;
SELECT plan(10);

SELECT tally.create_counter('fc');
UPDATE tally.shards SET drained_xid = NULL WHERE drained_xid IS NOT NULL;
SELECT is((SELECT count(*) FROM tally.delta), 0::bigint, 'precondition: nothing is pending');

-- 20,000 deltas over 200 keys in one call: one shard of the active generation
SELECT tally.increment_counters(
    array_fill('fc'::text, ARRAY[20000]),
    ARRAY(SELECT 'k' || (i % 200) FROM generate_series(1, 20000) AS i),
    array_fill(1::bigint, ARRAY[20000]));
CREATE TEMP TABLE fc_shard ON COMMIT DROP AS
SELECT DISTINCT d.tableoid::regclass AS rel FROM tally.delta AS d;
SELECT is((SELECT count(*) FROM fc_shard), 1::bigint, 'precondition: the 20,000 deltas lie in one shard');

CREATE TEMP VIEW fc_reads AS
SELECT coalesce(t.seq_scan, 0) AS seq_scans, coalesce(t.seq_tup_read, 0) AS rows_scanned
FROM pg_catalog.pg_stat_xact_user_tables AS t
WHERE t.relid = (SELECT rel FROM fc_shard);

SELECT results_eq(
    'SELECT s.action FROM tally._fold_step(1000) AS s',
    $$VALUES ('flipped'::text)$$,
    'the first step flips: the 20,000 deltas are now inactive'
);

-- 1. A plain step folds 1,000 of the 20,000
CREATE TEMP TABLE fc_before ON COMMIT DROP AS SELECT * FROM fc_reads;
SELECT results_eq(
    'SELECT s.action, s.folded, s.shard FROM tally._fold_step(1000) AS s',
    $$SELECT 'folded'::text, 1000::bigint, rel::text FROM fc_shard$$,
    'a plain step folds a chunk of 1,000 deltas out of the shard of 20,000'
);
SELECT results_eq(
    'SELECT r.seq_scans - b.seq_scans, r.rows_scanned - b.rows_scanned FROM fc_reads AS r, fc_before AS b',
    'VALUES (2::bigint, 1002::bigint)',
    'it read 1,002 rows of the shard, not its 20,000: two looks of one row each (is there a delta to fold, '
    'is one left), the only sequential scans, and the chunk''s 1,000 row ids (a TID range scan)'
);

-- 2. A slice step folds 1,000 of slice 0's deltas
UPDATE tally.shards SET resume_at = '(0,0)' WHERE shard_table = (SELECT rel FROM fc_shard);
DELETE FROM fc_before;
INSERT INTO fc_before SELECT * FROM fc_reads;
SELECT results_eq(
    'SELECT s.action, s.folded FROM tally._fold_step(1000, NULL, 1, NULL, 0, 2) AS s',
    $$VALUES ('folded'::text, 1000::bigint)$$,
    'a step of slice 0 of 2 folds a chunk of 1,000 of its deltas'
);
SELECT ok(
    (SELECT r.seq_scans - b.seq_scans = 2 AND r.rows_scanned - b.rows_scanned < 3000
     FROM fc_reads AS r, fc_before AS b),
    'it read under 3,000 rows of the shard, not its 19,000: two looks for a delta of its slice (a few rows '
    'each), the only sequential scans, and the chunk''s 1,000 row ids among about 2,000 rows of both slices'
);

-- 3. The rest, and the values
SELECT is(tally._fold(), 18000::bigint, 'folding the rest folds the other 18,000 deltas');
SELECT is((SELECT count(*) FROM tally.delta), 0::bigint, 'nothing is pending');
SELECT is(
    (SELECT count(*) FROM generate_series(0, 199) AS k WHERE tally.counter_value('fc', 'k' || k) <> 100), 0::bigint,
    'each of the 200 keys counts exactly 100'
);

SELECT * FROM finish();
ROLLBACK;
