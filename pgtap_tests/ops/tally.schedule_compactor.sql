-- tally.schedule_compactor / tally.unschedule_compactor outside the pg_cron
-- database: a clear refusal that says what to run where; argument checks.
-- (Scheduling for real, in the pg_cron database, is tested by pytest
-- test_schedule.py: pg_cron lives in one database only.)
BEGIN;
SELECT plan(12);

SELECT ok(to_regclass('cron.job') IS NULL, 'this test database has no pg_cron (it lives in cron.database_name)');
SELECT throws_ok(
    'SELECT tally.schedule_compactor()', '55000', NULL,
    'without pg_cron here: object_not_in_prerequisite_state'
);
SELECT throws_like(
    'SELECT tally.schedule_compactor()',
    '%pg_cron is not installed in database%',
    'the message names the database'
);
SELECT is(tally.unschedule_compactor(), 0, 'unschedule without pg_cron removes nothing');
SELECT throws_ok('SELECT tally.schedule_compactor(0)', '22023', NULL, 'p_seconds 0 is refused');
SELECT throws_ok('SELECT tally.schedule_compactor(60)', '22023', NULL, 'p_seconds over 59 is refused');
SELECT throws_ok('SELECT tally.schedule_compactor(55, 0)', '22023', NULL, 'p_interval 0 is refused');
SELECT throws_ok('SELECT tally.schedule_compactor(55, 56)', '22023', NULL, 'p_interval over p_seconds is refused');
SELECT throws_ok(
    'SELECT tally.schedule_compactor(55, 1, NULL)', '22004', NULL, 'a NULL maintenance schedule is refused'
);

SELECT throws_ok('SELECT tally.schedule_compactor(55, 1, p_workers => 0)', '22023', NULL, '0 workers are refused');
SELECT throws_ok(
    'SELECT tally.schedule_compactor(55, 1, p_workers => 65)', '22023', NULL,
    'more workers than key slices (tally._slice_buckets()) are refused'
);
SELECT throws_like(
    'SELECT tally.schedule_compactor(55, 1, p_workers => 3)',
    '%pg_cron is not installed%',
    'with workers too, the refusal outside the pg_cron database says where to schedule'
);

SELECT * FROM finish();
ROLLBACK;
