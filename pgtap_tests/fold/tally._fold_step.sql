-- tally._fold_step: one compactor step under the fold lock. It folds ONE
-- shard of the INACTIVE generation, always in delete mode (DELETE ...
-- RETURNING at most p_limit deltas); a shard it leaves empty is marked drained
-- by this transaction (tally.shards.drained_xid = pg_current_xact_id()). With
-- the inactive generation empty it reclaims (TRUNCATEs) shards drained by
-- committed transactions nobody can see any more, then flips (flips <=
-- p_flip_until, or p_flip_until NULL) or is idle. Inside ONE transaction (all
-- of pgTAP) a shard drained here is never reclaimed here: its drain is not
-- committed; truncation across transactions is tested by pytest
-- (test_bloat.py). Deltas of the active generation are folded only after a
-- flip; every fold is recorded in tally.fold_runs with p_attempt; reads are
-- the same before and after each step; a straggler arriving during a step
-- keeps its shard from being marked drained; refusals.
BEGIN;
SELECT plan(48);

-- Increments are at now(): their rollup partitions are premade, so no step
-- here creates one (pg_partman would leave the session search_path changed;
-- tally._fold puts it back, a bare step does not).
SET LOCAL lock_timeout = '4321ms';
SELECT tally.create_counter('fs');
SELECT tally.create_counter('fs_d', '{day}', true);
-- A shard drained by an earlier, committed transaction of this database would
-- be reclaimed by the steps below; this file is about one transaction, so
-- forget such drains (rolled back with the test).
UPDATE tally.shards SET drained_xid = NULL WHERE drained_xid IS NOT NULL;
-- G: the generation writers append to at the start; p: this backend's shard index.
CREATE TEMP TABLE fs_start ON COMMIT DROP AS
SELECT gen AS g, flips, pg_backend_pid() % 3 AS p, current_setting('lock_timeout') AS lock_timeout
FROM tally.write_gen;
CREATE TEMP TABLE fs_runs_before ON COMMIT DROP AS SELECT coalesce(max(id), 0) AS id FROM tally.fold_runs;
CREATE TEMP TABLE fs_filenodes ON COMMIT DROP AS
SELECT shard_table, pg_relation_filenode(shard_table) AS filenode FROM tally.shards;

-- What readers see; compared before and after each step.
CREATE TEMP VIEW fs_reads AS
SELECT 'value' AS what, v.counter, v.key, NULL::timestamptz AS bucket, tally.counter_value(v.counter, v.key) AS value
FROM (VALUES ('fs', 'a'), ('fs', 'b'), ('fs_d', 'a')) AS v (counter, key)
UNION ALL
SELECT 'minute', 'fs', k.key, s.bucket, s.value
FROM unnest(ARRAY['a', 'b']) AS k (key),
     tally.counter_series('fs', k.key, 'minute', now() - interval '1 hour', now() + interval '1 hour') AS s
UNION ALL
SELECT 'day', 'fs_d', 'a', s.bucket, s.value
FROM tally.counter_series('fs_d', 'a', 'day', now() - interval '1 day', now() + interval '1 day') AS s;

SELECT is((SELECT count(*) FROM tally.delta), 0::bigint, 'precondition: nothing is pending');

-- 1. Flip: the inactive generation is empty, p_flip_until NULL.
SELECT tally.increment_counters('{fs,fs,fs}', '{a,a,a}', '{1,2,3}');
CREATE TEMP TABLE fs_reads_0 ON COMMIT DROP AS SELECT * FROM fs_reads;
SELECT results_eq(
    'SELECT * FROM tally._fold_step(10)',
    $$SELECT 'flipped'::text, 0::bigint, flips + 1, NULL::text, NULL::text FROM fs_start$$,
    'with the inactive generation empty a step flips: (flipped, 0, flips + 1, NULL, NULL)'
);
SELECT results_eq(
    'SELECT gen::int, flips FROM tally.write_gen',
    'SELECT 1 - g, flips + 1 FROM fs_start',
    'the flip switched write_gen.gen and incremented flips'
);
SELECT is(
    (SELECT count(*) FROM tally.delta WHERE shard / 8 = (SELECT g FROM fs_start)), 3::bigint,
    'a flip moves no delta: the 3 deltas now wait in the inactive generation'
);
SELECT results_eq('SELECT * FROM fs_reads ORDER BY 1, 2, 3, 4', 'SELECT * FROM fs_reads_0 ORDER BY 1, 2, 3, 4',
                  'reads are the same before and after the flip');

-- 2. A shard holding 3 <= p_limit (10) deltas: folded whole, in delete mode,
-- and marked drained by this transaction.
CREATE TEMP TABLE fs_shard1 ON COMMIT DROP AS
SELECT format('tally.delta_g%s_fast_%s', g, p) AS name FROM fs_start;
CREATE TEMP TABLE fs_step2 ON COMMIT DROP AS SELECT * FROM tally._fold_step(10);
CREATE TEMP TABLE fs_settings2 ON COMMIT DROP AS SELECT current_setting('lock_timeout') AS lock_timeout;
SELECT results_eq(
    'SELECT * FROM fs_step2',
    $$SELECT 'folded'::text, 3::bigint, flips + 1, (SELECT name FROM fs_shard1), 'delete'::text FROM fs_start$$,
    'a shard holding <= p_limit deltas is folded whole, in delete mode: (folded, 3, flips, shard, delete)'
);
SELECT is(
    (SELECT count(*) FROM tally.delta WHERE tableoid = (SELECT name FROM fs_shard1)::regclass), 0::bigint,
    'the shard is empty'
);
SELECT results_eq(
    $$SELECT drained_xid = pg_current_xact_id(), drained_at = now(), truncated_at IS NULL
      FROM tally.shards WHERE shard_table = (SELECT name FROM fs_shard1)::regclass$$,
    $$VALUES (true, true, true)$$,
    'the emptied shard is marked drained by this transaction: drained_xid = pg_current_xact_id(), drained_at = now()'
);
SELECT is(
    tally._invisible_to_all((SELECT drained_xid FROM tally.shards WHERE shard_table = (SELECT name FROM fs_shard1)::regclass)),
    false,
    'that drain is not committed: tally._invisible_to_all(pg_current_xact_id()) is false, so it cannot be reclaimed yet'
);
SELECT is(
    tally._invisible_to_all(NULL), false,
    'tally._invisible_to_all(NULL) is false: a shard never drained is never reclaimed'
);
SELECT results_eq(
    $$SELECT deltas, attempts, outcome, shard, mode, error FROM tally.fold_runs WHERE id > (SELECT id FROM fs_runs_before)$$,
    $$SELECT 3::bigint, 1, 'ok'::text, name, 'delete'::text, NULL::text FROM fs_shard1$$,
    'the fold is recorded in fold_runs: 3 deltas, attempt 1, ok, its shard, mode delete (the flip is not)'
);
SELECT is(
    (SELECT t.value FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id
     WHERE c.name = 'fs' AND t.key = 'a'),
    6::bigint,
    'the folded deltas are in the total'
);
SELECT is((SELECT count(*) FROM pg_temp.tally_fold_batch), 0::bigint, 'the session''s scratch table is empty after the step');
SELECT results_eq('SELECT * FROM fs_reads ORDER BY 1, 2, 3, 4', 'SELECT * FROM fs_reads_0 ORDER BY 1, 2, 3, 4',
                  'reads are the same before and after the step');
SELECT is(
    (SELECT lock_timeout FROM fs_settings2), (SELECT lock_timeout FROM fs_start),
    'a step leaves the caller''s lock_timeout as it was'
);

-- 3. The next step finds the inactive generation empty: it reclaims nothing
-- drained by this (uncommitted) transaction, and flips.
SELECT tally.increment_counters('{fs_d,fs_d,fs_d}', '{a,a,a}', '{10,20,30}');
SELECT results_eq(
    'SELECT action, flips FROM tally._fold_step(10)',
    $$SELECT 'flipped'::text, flips + 2 FROM fs_start$$,
    'the drained inactive generation lets the next step flip again'
);
SELECT results_eq(
    $$SELECT drained_xid = pg_current_xact_id(), truncated_at IS NULL,
             pg_relation_filenode(shard_table) = (SELECT f.filenode FROM fs_filenodes AS f WHERE f.shard_table = s.shard_table)
      FROM tally.shards AS s WHERE shard_table = (SELECT name FROM fs_shard1)::regclass$$,
    $$VALUES (true, true, true)$$,
    'the shard drained by this transaction was not reclaimed: still marked drained, not TRUNCATEd (same relfilenode)'
);

-- 4. p_limit bounds a step: 3 durable deltas, flipped into the inactive
-- generation, p_limit 2.
-- A delta written now goes to the active generation (G again).
SELECT tally.increment_counter('fs', 'b', 100);
CREATE TEMP TABLE fs_shard3 ON COMMIT DROP AS
SELECT format('tally.delta_g%s_durable_%s', 1 - g, p) AS name FROM fs_start;
CREATE TEMP TABLE fs_reads_1 ON COMMIT DROP AS SELECT * FROM fs_reads;
CREATE TEMP TABLE fs_runs_2 ON COMMIT DROP AS SELECT max(id) AS id FROM tally.fold_runs;
SELECT results_eq(
    'SELECT * FROM tally._fold_step(2)',
    $$SELECT 'folded'::text, 2::bigint, flips + 2, (SELECT name FROM fs_shard3), 'delete'::text FROM fs_start$$,
    'a shard holding more than p_limit deltas gives exactly p_limit (2) of them'
);
SELECT is(
    (SELECT count(*) FROM tally.delta WHERE tableoid = (SELECT name FROM fs_shard3)::regclass), 1::bigint,
    'the rest (1 delta) stays pending in the shard'
);
SELECT is(
    (SELECT drained_xid FROM tally.shards WHERE shard_table = (SELECT name FROM fs_shard3)::regclass), NULL,
    'a shard still holding deltas is not marked drained'
);
SELECT results_eq(
    $$SELECT deltas, attempts, outcome, shard, mode FROM tally.fold_runs WHERE id > (SELECT id FROM fs_runs_2)$$,
    $$SELECT 2::bigint, 1, 'ok'::text, name, 'delete'::text FROM fs_shard3$$,
    'the fold is recorded in fold_runs with mode delete'
);
SELECT results_eq('SELECT * FROM fs_reads ORDER BY 1, 2, 3, 4', 'SELECT * FROM fs_reads_1 ORDER BY 1, 2, 3, 4',
                  'reads are the same before and after the bounded step');

-- p_attempt is recorded; the step that empties the shard marks it drained.
SELECT results_eq(
    'SELECT action, folded, shard, mode FROM tally._fold_step(2, NULL, 3)',
    $$SELECT 'folded'::text, 1::bigint, name, 'delete'::text FROM fs_shard3$$,
    'the last delta of the shard is folded by the next step'
);
SELECT is(
    (SELECT attempts FROM tally.fold_runs ORDER BY id DESC LIMIT 1), 3,
    'p_attempt (3) is recorded in fold_runs.attempts'
);
SELECT is(
    (SELECT drained_xid = pg_current_xact_id() FROM tally.shards WHERE shard_table = (SELECT name FROM fs_shard3)::regclass),
    true,
    'now empty, the shard is marked drained by this transaction'
);
SELECT results_eq('SELECT * FROM fs_reads ORDER BY 1, 2, 3, 4', 'SELECT * FROM fs_reads_1 ORDER BY 1, 2, 3, 4',
                  'reads are the same after that step');

-- 5. Only the inactive generation is drained; idle instead of a flip past p_flip_until.
SELECT results_eq(
    'SELECT shard, pending_deltas FROM tally.compactor_lag WHERE pending_deltas > 0',
    $$SELECT (g * 8 + p)::smallint, 1::bigint FROM fs_start$$,
    'the delta written after the flip is still pending, in the active generation'
);
SELECT is_empty(
    $$SELECT FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id WHERE c.name = 'fs' AND t.key = 'b'$$,
    'the steps did not fold it'
);
CREATE TEMP TABLE fs_runs_5 ON COMMIT DROP AS SELECT max(id) AS id FROM tally.fold_runs;
SELECT results_eq(
    'SELECT * FROM tally._fold_step(10, (SELECT flips + 1 FROM fs_start))',
    $$SELECT 'idle'::text, 0::bigint, flips + 2, NULL::text, NULL::text FROM fs_start$$,
    'inactive generation empty and flips (start + 2) > p_flip_until (start + 1): the step is idle'
);
SELECT results_eq(
    'SELECT gen::int, flips FROM tally.write_gen',
    'SELECT g::int, flips + 2 FROM fs_start',
    'an idle step does not flip'
);
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM tally.delta), (SELECT count(*) FROM tally.fold_runs WHERE id > (SELECT id FROM fs_runs_5))$$,
    $$VALUES (1::bigint, 0::bigint)$$,
    'an idle step folds nothing and records nothing (no reclaim either)'
);
SELECT results_eq(
    'SELECT action, folded, flips FROM tally._fold_step(10, (SELECT flips + 2 FROM fs_start))',
    $$SELECT 'flipped'::text, 0::bigint, flips + 3 FROM fs_start$$,
    'flips (start + 2) <= p_flip_until (start + 2): the step flips'
);
SELECT results_eq(
    'SELECT action, folded, shard, mode FROM tally._fold_step(10)',
    $$SELECT 'folded'::text, 1::bigint, format('tally.delta_g%s_fast_%s', g, p), 'delete'::text FROM fs_start$$,
    'after the flip the next step folds that delta'
);
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM tally.delta),
             (SELECT t.value FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id
              WHERE c.name = 'fs' AND t.key = 'b')$$,
    $$VALUES (0::bigint, 100::bigint)$$,
    'nothing is pending any more, and the delta is in the total'
);
SELECT results_eq('SELECT * FROM fs_reads ORDER BY 1, 2, 3, 4', 'SELECT * FROM fs_reads_1 ORDER BY 1, 2, 3, 4',
                  'reads are the same after everything was folded');
SELECT results_eq(
    $$SELECT shard, mode, deltas FROM tally.fold_runs WHERE id > (SELECT id FROM fs_runs_before) ORDER BY id$$,
    $$SELECT format('tally.delta_g%s_fast_%s', g, p), 'delete'::text, 3::bigint FROM fs_start
      UNION ALL SELECT format('tally.delta_g%s_durable_%s', 1 - g, p), 'delete', 2 FROM fs_start
      UNION ALL SELECT format('tally.delta_g%s_durable_%s', 1 - g, p), 'delete', 1 FROM fs_start
      UNION ALL SELECT format('tally.delta_g%s_fast_%s', g, p), 'delete', 1 FROM fs_start$$,
    'fold_runs lists one row per fold with its shard, all in delete mode: no truncate row in this transaction'
);
SELECT results_eq(
    $$SELECT shard_table::text FROM tally.shards WHERE drained_xid IS NOT NULL ORDER BY 1$$,
    $$SELECT format('tally.delta_g%s_durable_%s', 1 - g, p) FROM fs_start
      UNION ALL SELECT format('tally.delta_g%s_fast_%s', g, p) FROM fs_start ORDER BY 1$$,
    'exactly the two shards emptied here are marked drained'
);
SELECT is_empty(
    $$SELECT s.shard_table FROM tally.shards AS s JOIN fs_filenodes AS f USING (shard_table)
      WHERE pg_relation_filenode(s.shard_table) <> f.filenode OR s.truncated_at IS NOT NULL$$,
    'no shard was TRUNCATEd in this transaction (every relfilenode unchanged, no truncated_at set)'
);

-- 6. Refusals change nothing.
CREATE TEMP TABLE fs_state ON COMMIT DROP AS
SELECT (SELECT count(*) FROM tally.fold_runs) AS runs, (SELECT flips FROM tally.write_gen) AS flips;
SELECT throws_ok(
    'SELECT * FROM tally._fold_step(0)',
    '22023', 'tally._fold_step: limit 0 must be a positive number of deltas',
    'limit 0 is refused with invalid_parameter_value'
);
SELECT throws_ok(
    'SELECT * FROM tally._fold_step(NULL)',
    '22023', 'tally._fold_step: limit NULL must be a positive number of deltas',
    'a NULL limit is refused with invalid_parameter_value'
);
SELECT throws_ok('SELECT * FROM tally._fold_step(-1, NULL, 1)', '22023', NULL, 'a negative limit is refused');
SELECT results_eq(
    'SELECT (SELECT count(*) FROM tally.fold_runs), (SELECT flips FROM tally.write_gen)',
    'SELECT runs, flips FROM fs_state',
    'a refused step records nothing and does not flip'
);

-- 7. A straggler (a delta arriving in the shard during the step, after its
-- DELETE; here inserted by a trigger, once) keeps the shard from being
-- marked drained; the next step folds it and marks the shard drained.
SELECT tally.increment_counters('{fs,fs}', '{c,c}', '{5,6}');
SELECT is(
    (SELECT action FROM tally._fold_step(10)), 'flipped',
    'precondition: a flip moved the two deltas to the inactive generation'
);
CREATE TEMP TABLE fs_shard7 ON COMMIT DROP AS
SELECT format('tally.delta_g%s_fast_%s', 1 - g, p) AS name FROM fs_start;
CREATE TEMP SEQUENCE fs_straggler_seq;
CREATE FUNCTION pg_temp.fs_straggler() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_catalog.nextval('pg_temp.fs_straggler_seq') = 1 THEN
        INSERT INTO tally.delta (shard, counter_id, key, delta, at)
        SELECT (1 - w.gen) * 8 + pg_catalog.pg_backend_pid() % 3, c.id, 'c', 1000, pg_catalog.now()
        FROM tally.write_gen AS w, tally.counters AS c WHERE c.name = 'fs';
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER fs_straggler AFTER INSERT ON tally.totals FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.fs_straggler();
CREATE TEMP TABLE fs_reads_7 ON COMMIT DROP AS SELECT * FROM fs_reads;
SELECT results_eq(
    'SELECT action, folded, shard, mode FROM tally._fold_step(10)',
    $$SELECT 'folded'::text, 2::bigint, name, 'delete'::text FROM fs_shard7$$,
    'the step folds the two deltas it deleted'
);
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM tally.delta WHERE tableoid = (SELECT name FROM fs_shard7)::regclass),
             (SELECT drained_xid FROM tally.shards WHERE shard_table = (SELECT name FROM fs_shard7)::regclass)$$,
    $$VALUES (1::bigint, NULL::xid8)$$,
    'the straggler is pending in the shard, which is not marked drained'
);
DROP TRIGGER fs_straggler ON tally.totals;
CREATE TEMP TABLE fs_step7 ON COMMIT DROP AS SELECT * FROM tally._fold_step(10);
SELECT results_eq(
    $$SELECT s.folded, (SELECT drained_xid = pg_current_xact_id() FROM tally.shards
                        WHERE shard_table = (SELECT name FROM fs_shard7)::regclass)
      FROM fs_step7 AS s$$,
    $$VALUES (1::bigint, true)$$,
    'the next step folds the straggler and marks the shard drained'
);
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM tally.delta), tally.counter_value('fs', 'c')$$,
    $$VALUES (0::bigint, 1011::bigint)$$,
    'both deltas and the straggler were folded, nothing twice'
);
SELECT results_eq('SELECT * FROM fs_reads ORDER BY 1, 2, 3, 4', 'SELECT * FROM fs_reads_7 ORDER BY 1, 2, 3, 4',
                  'reads (of keys a and b) are the same before and after those steps');

SELECT * FROM finish();
ROLLBACK;
