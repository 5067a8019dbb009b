-- Time zones of counters: create_counter's p_time_zone (checked, spelled as
-- PostgreSQL lists it), tally.set_time_zone while a counter has no data and
-- its refusals, and buckets cut on the zone's wall clock in pending reads,
-- folds, top_keys and retention_policies: a northern zone's 25-hour day, a
-- half-hour zone's hours.
BEGIN;
SELECT plan(24);

SET LOCAL timezone = 'Asia/Tokyo';  -- the session's zone plays no part

-- Creation
SELECT lives_ok(
    $$SELECT tally.create_counter('tz_ny', '{hour,day,week,month}', false, 'america/NEW_york')$$,
    'a counter is created in a time zone named in any case'
);
SELECT is((SELECT time_zone FROM tally.counters WHERE name = 'tz_ny'), 'America/New_York',
          'the zone is stored as PostgreSQL spells it');
SELECT tally.create_counter('tz_utc');
SELECT is((SELECT time_zone FROM tally.counters WHERE name = 'tz_utc'), 'UTC', 'the default zone is UTC');
SELECT throws_ok(
    $$SELECT tally.create_counter('tz_bad', p_time_zone => 'Mars/Olympus')$$,
    '22023', 'tally.create_counter: unknown time zone "Mars/Olympus"',
    'an unknown zone is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT tally.create_counter('tz_bad', p_time_zone => '+05:30')$$,
    '22023', NULL,
    'an offset is refused (a zone is a name listed in pg_timezone_names)'
);
SELECT throws_ok(
    $$SELECT tally.create_counter('tz_bad', p_time_zone => NULL)$$,
    '22004', 'tally.create_counter: time zone must not be NULL',
    'a NULL zone is refused with null_value_not_allowed'
);
SELECT is_empty($$SELECT FROM tally.counters WHERE name = 'tz_bad'$$, 'a refused creation creates nothing');

-- set_time_zone while there is no data, refused once there is
SELECT lives_ok($$SELECT tally.set_time_zone('tz_utc', 'Asia/Kolkata')$$, 'the zone changes while there is no data');
SELECT is((SELECT time_zone FROM tally.counters WHERE name = 'tz_utc'), 'Asia/Kolkata', 'to the zone given');
SELECT throws_ok(
    $$SELECT tally.set_time_zone('tz_utc', 'Moon/Base')$$,
    '22023', 'tally.set_time_zone: unknown time zone "Moon/Base"',
    'set_time_zone refuses an unknown zone'
);
SELECT throws_ok(
    $$SELECT tally.set_time_zone('tz_none', 'UTC')$$,
    '42704', NULL,
    'set_time_zone refuses an unknown counter'
);
SELECT tally.increment_counter('tz_utc', 'k', 1, '2026-11-01 00:10+00');  -- 05:40 in Kolkata
SELECT throws_ok(
    $$SELECT tally.set_time_zone('tz_utc', 'UTC')$$,
    '55000', 'tally.set_time_zone: counter "tz_utc" already has data in time zone Asia/Kolkata',
    'a pending delta is data: the zone cannot change'
);
SELECT lives_ok($$SELECT tally.set_time_zone('tz_utc', 'asia/kolkata')$$, 'naming the zone it has is no change');
SELECT is((SELECT time_zone FROM tally.counters WHERE name = 'tz_utc'), 'Asia/Kolkata', 'the refusals changed nothing');

-- Buckets on the wall clock, pending
-- 2026-11-01 is New York's 25-hour day (EDT ends at 02:00 local): it runs
-- from 04:00 UTC to 05:00 UTC the next day.
SELECT tally.increment_counter('tz_ny', 'k', 1, '2026-11-01 03:30+00');   -- Oct 31, 23:30 EDT
SELECT tally.increment_counter('tz_ny', 'k', 10, '2026-11-01 04:00+00');  -- Nov 1, 00:00 EDT
SELECT tally.increment_counter('tz_ny', 'k', 100, '2026-11-02 04:30+00'); -- Nov 1, 23:30 EST
SELECT tally.increment_counter('tz_ny', 'k', 1000, '2026-11-02 05:00+00'); -- Nov 2, 00:00 EST
CREATE TEMP TABLE tz_days ON COMMIT DROP AS
SELECT * FROM (VALUES ('2026-10-31 04:00+00'::timestamptz, 1::bigint), ('2026-11-01 04:00+00', 110),
                      ('2026-11-02 05:00+00', 1000)) AS v (bucket, value);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('tz_ny', 'k', 'day', '2026-10-30', '2026-11-05')$$,
    $$SELECT * FROM tz_days$$,
    'pending: local days, the 25-hour one holding both of its ends'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('tz_ny', 'k', 'month', '2026-10-01', '2026-12-01')$$,
    $$VALUES ('2026-10-01 04:00+00'::timestamptz, 1::bigint), ('2026-11-01 04:00+00', 1110)$$,
    'pending: local months'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('tz_utc', 'k', 'hour', '2026-10-31', '2026-11-02')$$,
    $$VALUES ('2026-10-31 23:30+00'::timestamptz, 1::bigint)$$,
    'pending: a half-hour zone''s hours start on the half hour'
);
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tz_ny', 'day', '2026-11-02 04:59+00')$$,
    $$VALUES ('k'::text, 110::bigint)$$,
    'pending: top_keys reads the local day holding the time given'
);

-- Folded: the same buckets
CREATE TEMP TABLE tz_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is((SELECT n FROM tz_fold), 5::bigint, 'the fold folds the five deltas');
SELECT results_eq(
    $$SELECT bucket, value FROM tally.rollup_day
      WHERE counter_id = (SELECT id FROM tally.counters WHERE name = 'tz_ny') ORDER BY bucket$$,
    $$SELECT * FROM tz_days$$,
    'folded: the day rollup holds the local days'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('tz_ny', 'k', 'week', '2026-10-01', '2026-12-01')$$,
    $$VALUES ('2026-10-26 04:00+00'::timestamptz, 111::bigint), ('2026-11-02 05:00+00', 1000)$$,
    'folded: local ISO weeks (Monday 00:00 local, EDT then EST; Sunday Nov 1 in the first)'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('tz_utc', 'k', 'hour', '2026-10-31', '2026-11-02')$$,
    $$VALUES ('2026-10-31 23:30+00'::timestamptz, 1::bigint)$$,
    'folded: the half-hour zone''s hour'
);
SELECT throws_ok(
    $$SELECT tally.set_time_zone('tz_ny', 'UTC')$$,
    '55000', NULL,
    'folded buckets are data: the zone cannot change'
);

-- Retention follows the wall clock
SELECT tally.set_retention('tz_ny', 'day', '3 days');
SELECT is(
    (SELECT oldest_bucket_kept FROM tally.retention_policies WHERE counter = 'tz_ny' AND granularity = 'day'),
    (date_trunc('day', (now() AT TIME ZONE 'America/New_York') - interval '3 days') AT TIME ZONE 'America/New_York'),
    'retention_policies: the oldest day kept is a local midnight, three local days back'
);

SELECT * FROM finish();
ROLLBACK;
