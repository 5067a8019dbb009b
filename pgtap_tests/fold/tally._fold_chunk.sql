-- tally._fold_chunk (through tally._fold_step), inside one transaction: a
-- chunk takes the next p_limit deltas of its shard in (counter, key) order,
-- not in the order they were written; the shard (or, folded in slices, the
-- slice's row of tally.shard_slices) resumes at the pair the chunk ended in,
-- that pair included (a chunk may end inside its deltas); a chunk that
-- comes up short resets the resume point, and one that finds nothing past
-- it starts over from the first pair (a straggler of a lower pair). Every
-- delta is folded exactly once: the deltas are powers of ten, so each total
-- names the very deltas folded into it.
BEGIN;
SELECT plan(14);

SET LOCAL lock_timeout = '4321ms';
SELECT tally.create_counter('fc');
UPDATE tally.shards SET drained_xid = NULL WHERE drained_xid IS NOT NULL;
CREATE TEMP TABLE fc_start ON COMMIT DROP AS
SELECT w.gen AS g, (SELECT c.id FROM tally.counters AS c WHERE c.name = 'fc') AS id,
       format('tally.delta_g%s_fast_%s', w.gen, pg_backend_pid() % 3) AS shard
FROM tally.write_gen AS w;
CREATE TEMP VIEW fc_totals AS
SELECT t.key, t.value FROM tally.totals AS t WHERE t.counter_id = (SELECT id FROM fc_start);
CREATE TEMP VIEW fc_resume AS
SELECT s.resume_counter, s.resume_key FROM tally.shards AS s
WHERE s.shard_table = (SELECT shard FROM fc_start)::regclass;

SELECT is((SELECT count(*) FROM tally.delta), 0::bigint, 'precondition: nothing is pending');
-- Written in the order c, b, a, c, b, a, d (one statement: that is their
-- order in the shard).
SELECT tally.increment_counters(
    array_fill('fc'::text, ARRAY[7]), '{c,b,a,c,b,a,d}', '{1,10,100,1000,10000,100000,1000000}');
SELECT results_eq(
    'SELECT s.action FROM tally._fold_step(3) AS s', $$VALUES ('flipped'::text)$$,
    'the first step flips: the 7 deltas wait in the inactive generation'
);

-- 1. The first chunk: the 3 deltas of the lowest pairs (a's two, one of b's)
SELECT results_eq(
    'SELECT s.action, s.folded, s.shard FROM tally._fold_step(3) AS s',
    $$SELECT 'folded'::text, 3::bigint, shard FROM fc_start$$,
    'a step folds a chunk of 3 deltas of the shard'
);
SELECT results_eq(
    'SELECT key, value IN (10, 10000) OR key = ''a'' AND value = 100100 FROM fc_totals ORDER BY key',
    $$VALUES ('a'::text, true), ('b', true)$$,
    'the chunk holds the deltas of the lowest pairs in (counter, key) order (both of a, one of b), '
    'not the first 3 written (c, b, a)'
);
SELECT results_eq(
    'SELECT * FROM fc_resume', 'SELECT id, ''b''::text FROM fc_start',
    'the shard resumes at the pair the chunk ended in: (fc, b)'
);

-- 2. The next chunk starts at that pair: b's other delta, then c's
SELECT results_eq(
    'SELECT s.action, s.folded FROM tally._fold_step(3) AS s', $$VALUES ('folded'::text, 3::bigint)$$,
    'the next step folds the next 3 deltas'
);
SELECT results_eq(
    'SELECT key, value FROM fc_totals ORDER BY key',
    $$VALUES ('a'::text, 100100::bigint), ('b', 10010), ('c', 1001)$$,
    'it took up the pair the last chunk ended inside (b), then the next (c); nothing twice'
);
SELECT results_eq(
    'SELECT * FROM fc_resume', 'SELECT id, ''c''::text FROM fc_start',
    'the shard resumes at (fc, c)'
);

-- 3. A straggler of a lower pair, behind the resume point
INSERT INTO tally.delta (shard, counter_id, key, delta, at)
SELECT tally._shard_no(g::smallint, false, (pg_backend_pid() % 3)::smallint), id, 'a', 10000000, now() FROM fc_start;
SELECT results_eq(
    'SELECT s.action, s.folded FROM tally._fold_step(3) AS s', $$VALUES ('folded'::text, 1::bigint)$$,
    'the next chunk takes what lies past the resume point: d''s delta alone'
);
SELECT results_eq(
    'SELECT key, value FROM fc_totals ORDER BY key',
    $$VALUES ('a'::text, 100100::bigint), ('b', 10010), ('c', 1001), ('d', 1000000)$$,
    'd is folded; the straggler of a, before the resume point, not yet'
);
SELECT results_eq(
    'SELECT * FROM fc_resume', 'VALUES (NULL::integer, NULL::text)',
    'a chunk short of p_limit resets the resume point (NULL: the first pair)'
);
SELECT results_eq(
    'SELECT s.action, s.folded FROM tally._fold_step(3) AS s', $$VALUES ('folded'::text, 1::bigint)$$,
    'the next chunk starts over from the first pair and takes the straggler'
);
SELECT results_eq(
    'SELECT key, value FROM fc_totals ORDER BY key',
    $$VALUES ('a'::text, 10100100::bigint), ('b', 10010), ('c', 1001), ('d', 1000000)$$,
    'every delta is folded exactly once'
);

-- 4. Folded in slices: the chunk of a slice takes the lowest pairs of the
-- slice, and the slice's own row keeps where it ended.
CREATE TEMP TABLE fc_keys ON COMMIT DROP AS
SELECT k.key, tally._slice((SELECT id FROM fc_start), k.key, 2) AS slice
FROM (SELECT 'k' || lpad(n::text, 2, '0') AS key FROM generate_series(1, 40) AS n) AS k;
SELECT tally.increment_counters(
    array_fill('fc'::text, ARRAY[40]), ARRAY(SELECT key FROM fc_keys ORDER BY key DESC), array_fill(1::bigint, ARRAY[40]));
SELECT tally._fold_step(1000);  -- flip: the 40 deltas are inactive now
CREATE TEMP TABLE fc_slice_step ON COMMIT DROP AS SELECT * FROM tally._fold_step(3, NULL, 1, NULL, 0, 2);
SELECT results_eq(
    $$SELECT t.key, x.resume_key FROM tally.totals AS t
      JOIN tally.shard_slices AS x ON x.shard_table = (SELECT shard FROM fc_slice_step)::regclass AND x.slices = 2 AND x.slice = 0
      WHERE t.counter_id = (SELECT id FROM fc_start) AND t.key LIKE 'k%' ORDER BY t.key$$,
    $$SELECT k.key, max(k.key) OVER () FROM (SELECT key FROM fc_keys WHERE slice = 0 ORDER BY key LIMIT 3) AS k
      ORDER BY k.key$$,
    'slice 0''s chunk folds the 3 lowest keys of slice 0 and resumes at the last of them (tally.shard_slices)'
);

SELECT * FROM finish();
ROLLBACK;
