-- tally.compactor_runs: tally.fold_runs as an operator reads it, newest
-- first: start, duration (finished_at - started_at), deltas, attempts,
-- outcome, error, shard and mode. Successful folds are recorded by the fold
-- steps; retried and failed attempts by tally._record_fold.
BEGIN;
SELECT plan(13);

-- Shape
SELECT has_view('tally', 'compactor_runs', 'view tally.compactor_runs exists');
SELECT columns_are(
    'tally', 'compactor_runs',
    ARRAY['id', 'started_at', 'duration', 'deltas', 'attempts', 'outcome', 'error', 'shard', 'mode'],
    'tally.compactor_runs has the expected columns'
);
SELECT results_eq(
    $$SELECT a.attname::text COLLATE "default", format_type(a.atttypid, a.atttypmod)
      FROM pg_catalog.pg_attribute AS a
      WHERE a.attrelid = 'tally.compactor_runs'::regclass AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum$$,
    $$VALUES ('id'::text, 'bigint'::text), ('started_at', 'timestamp with time zone'), ('duration', 'interval'),
             ('deltas', 'bigint'), ('attempts', 'integer'), ('outcome', 'text'), ('error', 'text'),
             ('shard', 'text'), ('mode', 'text')$$,
    'tally.compactor_runs column types (duration is an interval)'
);

-- A fresh install has no failed fold.
SELECT is_empty(
    $$SELECT FROM tally.compactor_runs WHERE outcome <> 'ok'$$,
    'a fresh install: no retried or failed fold in tally.compactor_runs'
);

-- Folds recorded by the fold steps
CREATE TEMP TABLE cr_last ON COMMIT DROP AS SELECT coalesce(max(id), 0) AS id FROM tally.fold_runs;
SELECT tally.create_counter('cr_c');
SELECT tally.increment_counters('{cr_c,cr_c,cr_c}', '{a,b,c}', '{1,1,1}');
CREATE TEMP TABLE cr_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is(
    (SELECT sum(deltas) FROM tally.compactor_runs WHERE id > (SELECT id FROM cr_last)),
    (SELECT n FROM cr_fold)::numeric,
    'the folds of tally._fold appear, their deltas adding up to what it folded'
);
SELECT is_empty(
    $$SELECT FROM tally.compactor_runs
      WHERE id > (SELECT id FROM cr_last)
        AND NOT (outcome = 'ok' AND attempts = 1 AND error IS NULL
                 AND shard LIKE 'tally.delta\_g_\_%' AND mode IN ('truncate', 'delete'))$$,
    'each fold step shows outcome ok, 1 attempt, no error, its shard and its mode'
);

-- Attempts recorded by tally._record_fold
SELECT tally._record_fold(now() - interval '2.5 seconds', 0, 1, 'retried', '40P01: deadlock detected');
SELECT tally._record_fold(now() - interval '1 second', 0, 5, 'failed', '55P03: lock timeout');
SELECT results_eq(
    $$SELECT started_at, deltas, attempts, outcome, error, shard, mode FROM tally.compactor_runs LIMIT 2$$,
    $$VALUES (now() - interval '1 second', 0::bigint, 5, 'failed'::text, '55P03: lock timeout'::text,
              NULL::text, NULL::text),
             (now() - interval '2.5 seconds', 0, 1, 'retried', '40P01: deadlock detected', NULL, NULL)$$,
    'newest first: the failed attempt, then the retried one, with attempts and error (no shard, no mode)'
);
-- finished_at is the clock when the attempt was recorded: 2.5 s after its
-- start, plus the time this transaction ran before (now() is its start).
SELECT ok(
    (SELECT duration BETWEEN interval '2.5 seconds' AND interval '2.5 seconds' + (clock_timestamp() - now())
     FROM tally.compactor_runs WHERE outcome = 'retried' AND id > (SELECT id FROM cr_last)),
    'duration is finished_at - started_at: 2.5 s, plus at most the time since this transaction began'
);
SELECT results_eq(
    'SELECT id, started_at, duration, deltas, attempts, outcome, error, shard, mode FROM tally.compactor_runs',
    $$SELECT id, started_at, finished_at - started_at, deltas, attempts, outcome, error, shard, mode
      FROM tally.fold_runs ORDER BY id DESC$$,
    'compactor_runs is every row of tally.fold_runs, newest (highest id) first, duration = finished_at - started_at'
);
SELECT is(
    (SELECT count(*) FROM tally.compactor_runs), (SELECT count(*) FROM tally.fold_runs),
    'one row per fold run'
);
SELECT is(
    (SELECT outcome FROM tally.compactor_runs LIMIT 1), 'failed', 'the first row is the latest attempt'
);

-- Pruned runs (tally.maintain keeps 7 days) are gone from the view.
DELETE FROM tally.fold_runs WHERE outcome = 'retried';
SELECT is_empty($$SELECT FROM tally.compactor_runs WHERE outcome = 'retried'$$, 'a pruned run is gone from the view');
SELECT throws_ok(
    $$INSERT INTO tally.fold_runs (started_at, outcome) VALUES (now(), 'partial')$$, '23514', NULL,
    'the outcome shown is one of ok, retried, failed'
);

SELECT * FROM finish();
ROLLBACK;
