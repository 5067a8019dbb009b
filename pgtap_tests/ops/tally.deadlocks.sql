-- tally.deadlocks: one row: deadlocks in this database since the install
-- (pg_stat_database minus tally.install_baseline), and what tally's own
-- folds met, counted by tally._record_fold in tally.fold_stats: deadlocks
-- retried, other transient failures retried, folds abandoned. Zero on a
-- fresh install; the fold counts survive the pruning of tally.fold_runs.
BEGIN;
SELECT plan(23);

-- Shape
SELECT has_view('tally', 'deadlocks', 'view tally.deadlocks exists');
SELECT columns_are(
    'tally', 'deadlocks',
    ARRAY['installed_at', 'database_deadlocks', 'counted_since', 'fold_deadlocks_retried', 'fold_failures_retried',
          'folds_abandoned'],
    'tally.deadlocks has the expected columns'
);
SELECT results_eq(
    $$SELECT a.attname::text COLLATE "default", format_type(a.atttypid, a.atttypmod)
      FROM pg_catalog.pg_attribute AS a
      WHERE a.attrelid = 'tally.deadlocks'::regclass AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum$$,
    $$VALUES ('installed_at'::text, 'timestamp with time zone'::text), ('database_deadlocks', 'bigint'),
             ('counted_since', 'timestamp with time zone'), ('fold_deadlocks_retried', 'bigint'),
             ('fold_failures_retried', 'bigint'), ('folds_abandoned', 'bigint')$$,
    'tally.deadlocks: timestamps are timestamptz, counts bigint'
);

-- Fresh install
SELECT is((SELECT count(*) FROM tally.deadlocks), 1::bigint, 'tally.deadlocks has exactly one row');
SELECT results_eq(
    'SELECT fold_deadlocks_retried, fold_failures_retried, folds_abandoned FROM tally.deadlocks',
    $$VALUES (0::bigint, 0::bigint, 0::bigint)$$,
    'a fresh install: no fold deadlock retried, no other fold failure retried, no fold abandoned'
);
SELECT is((SELECT database_deadlocks FROM tally.deadlocks), 0::bigint, 'a fresh install: database_deadlocks is 0');
SELECT is(
    (SELECT installed_at FROM tally.deadlocks), (SELECT installed_at FROM tally.install_baseline),
    'installed_at is the install time kept in tally.install_baseline'
);
SELECT ok(
    (SELECT d.counted_since = d.installed_at
            OR d.counted_since = (SELECT s.stats_reset FROM pg_catalog.pg_stat_database AS s
                                  WHERE s.datname = current_database())
     FROM tally.deadlocks AS d),
    'counted_since is the install, or the last reset of the statistics since'
);
SELECT results_eq(
    'SELECT singleton, retried_deadlocks, retried_other, abandoned FROM tally.fold_stats',
    $$VALUES (true, 0::bigint, 0::bigint, 0::bigint)$$,
    'tally.fold_stats holds one row of zeros on a fresh install'
);

-- Compactor attempts recorded by tally._record_fold
CREATE TEMP TABLE dl_runs ON COMMIT DROP AS SELECT count(*) AS n FROM tally.fold_runs;
CREATE TEMP VIEW dl AS
SELECT fold_deadlocks_retried AS dl, fold_failures_retried AS other, folds_abandoned AS abandoned FROM tally.deadlocks;

SELECT tally._record_fold(now(), 0, 2, 'retried', '40P01: deadlock detected');
SELECT results_eq('SELECT * FROM dl', $$VALUES (1::bigint, 0::bigint, 0::bigint)$$,
                  'a retried attempt with 40P01 counts as a fold deadlock retried');
SELECT tally._record_fold(now(), 0, 3, 'retried', '40P01: deadlock detected');
SELECT results_eq('SELECT * FROM dl', $$VALUES (2::bigint, 0::bigint, 0::bigint)$$, 'each one counts');
SELECT tally._record_fold(now(), 0, 1, 'retried', '55P03: canceling statement due to lock timeout');
SELECT results_eq('SELECT * FROM dl', $$VALUES (2::bigint, 1::bigint, 0::bigint)$$,
                  'a retried attempt with 55P03 counts as another fold failure retried');
SELECT tally._record_fold(now(), 0, 1, 'retried', '40001: could not serialize access');
SELECT tally._record_fold(now(), 0, 1, 'retried', '57014: canceling statement due to statement timeout');
SELECT results_eq('SELECT * FROM dl', $$VALUES (2::bigint, 3::bigint, 0::bigint)$$,
                  'serialization failures and statement timeouts retried count as other failures');
SELECT tally._record_fold(now(), 0, 5, 'failed', '40P01: deadlock detected');
SELECT results_eq('SELECT * FROM dl', $$VALUES (2::bigint, 3::bigint, 1::bigint)$$,
                  'a failed attempt counts as a fold abandoned (not as a retry, whatever its error)');
SELECT tally._record_fold(now(), 7, 1, 'ok', NULL);
SELECT results_eq('SELECT * FROM dl', $$VALUES (2::bigint, 3::bigint, 1::bigint)$$, 'an ok fold counts in none');
SELECT is(
    (SELECT count(*) FROM tally.fold_runs) - (SELECT n FROM dl_runs), 7::bigint,
    'every attempt recorded is also a row of tally.fold_runs'
);
SELECT results_eq(
    $$SELECT outcome, attempts, error FROM tally.fold_runs ORDER BY id DESC LIMIT 3$$,
    $$VALUES ('ok'::text, 1, NULL::text), ('failed', 5, '40P01: deadlock detected'),
             ('retried', 1, '57014: canceling statement due to statement timeout')$$,
    'with its outcome, attempts and error'
);
SELECT results_eq(
    'SELECT retried_deadlocks, retried_other, abandoned FROM tally.fold_stats',
    'SELECT * FROM dl',
    'the view reads tally.fold_stats'
);

-- fold_runs is pruned after 7 days; the counts are kept.
DELETE FROM tally.fold_runs;
SELECT results_eq('SELECT * FROM dl', $$VALUES (2::bigint, 3::bigint, 1::bigint)$$,
                  'the counts survive the pruning of tally.fold_runs');
SELECT is((SELECT database_deadlocks FROM tally.deadlocks), 0::bigint,
          'database_deadlocks is still 0: retries recorded by tally are not database deadlocks');

-- A retried attempt without an error message.
SELECT lives_ok(
    $$SELECT tally._record_fold(now(), 0, 1, 'retried', NULL)$$,
    'a retried attempt without an error message is recorded'
);
SELECT results_eq('SELECT * FROM dl', $$VALUES (2::bigint, 4::bigint, 1::bigint)$$,
                  'and counts as another fold failure retried');

-- fold_stats is a singleton
SELECT throws_ok('INSERT INTO tally.fold_stats DEFAULT VALUES', '23505', NULL, 'a second fold_stats row is refused');

SELECT * FROM finish();
ROLLBACK;
