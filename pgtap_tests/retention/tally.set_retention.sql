-- tally.set_retention: per-counter overrides and per-granularity defaults,
-- shown by tally.retention_policies and tally._keep / tally._cutoff;
-- pg_partman's retention of each rollup table synced to the longest
-- retention of the counters keeping it (NULL once one keeps it forever); a
-- fold skips buckets older than the retention, while the total and the
-- coarser granularities still count them; counter_series and top_keys hide
-- them, pending or folded; refusals change nothing.
BEGIN;
SELECT plan(46);

-- Cutoffs are compared with UTC arithmetic below (tally._cutoff itself runs
-- in UTC whatever the session time zone: checked at the end).
SET LOCAL timezone = 'UTC';

-- pg_partman's retention depends on every counter in the database.
SELECT is_empty('SELECT FROM tally.counters', 'precondition: no counter exists yet (a fresh database)');

SELECT tally.create_counter('rt');
SELECT tally.create_counter('rt_md', '{minute,day}');
CREATE TEMP TABLE rt_ids ON COMMIT DROP AS SELECT name, id FROM tally.counters;
CREATE TEMP VIEW rt_partman AS
SELECT parent_table, retention FROM partman.part_config WHERE parent_table LIKE 'tally.rollup\_%';

-- 1. Defaults: minute 7 days, hour 90 days, day/week/month forever.
SELECT results_eq(
    $$SELECT counter, granularity, keep, set_by, oldest_bucket_kept FROM tally.retention_policies$$,
    $$VALUES ('rt'::text, 'minute'::text, '7 days'::interval, 'default'::text,
              date_trunc('minute', now() - interval '7 days', 'UTC')),
             ('rt', 'hour', '90 days', 'default', date_trunc('hour', now() - interval '90 days', 'UTC')),
             ('rt', 'day', NULL, 'default', '-infinity'),
             ('rt', 'week', NULL, 'default', '-infinity'),
             ('rt', 'month', NULL, 'default', '-infinity'),
             ('rt_md', 'minute', '7 days', 'default', date_trunc('minute', now() - interval '7 days', 'UTC')),
             ('rt_md', 'day', NULL, 'default', '-infinity')$$,
    'retention_policies: one row per counter and granularity it keeps, with the defaults and their cutoffs'
);
SELECT results_eq(
    $$SELECT tally._keep(id, 'minute'), tally._keep(id, 'hour'), tally._keep(id, 'day'),
             tally._keep(id, 'week'), tally._keep(id, 'month')
      FROM rt_ids WHERE name = 'rt'$$,
    $$VALUES ('7 days'::interval, '90 days'::interval, NULL::interval, NULL::interval, NULL::interval)$$,
    '_keep: the granularity defaults (NULL: forever)'
);
SELECT results_eq(
    $$SELECT tally._cutoff(id, 'minute', '2024-06-15 12:34:56+00'), tally._cutoff(id, 'hour', '2024-06-15 12:34:56+00'),
             tally._cutoff(id, 'day', '2024-06-15 12:34:56+00')
      FROM rt_ids WHERE name = 'rt'$$,
    $$VALUES ('2024-06-08 12:34+00'::timestamptz, '2024-03-17 12:00+00'::timestamptz, '-infinity'::timestamptz)$$,
    '_cutoff: start of the oldest bucket kept at p_now (minute 7 days back, hour 90 days back; -infinity: all)'
);
SELECT results_eq(
    'SELECT * FROM rt_partman ORDER BY 1',
    $$VALUES ('tally.rollup_day'::text, NULL::text), ('tally.rollup_hour', '90 days'),
             ('tally.rollup_minute', '7 days'), ('tally.rollup_month', NULL), ('tally.rollup_week', NULL)$$,
    'pg_partman retention: minute 7 days, hour 90 days, the others none'
);

-- 2. Per-counter overrides.
SELECT lives_ok($$SELECT tally.set_retention('rt', 'minute', '30 days')$$, 'an override for a counter is accepted');
SELECT tally.set_retention('rt', 'day', '400 days');
SELECT results_eq(
    $$SELECT counter, granularity, keep, set_by FROM tally.retention_policies$$,
    $$VALUES ('rt'::text, 'minute'::text, '30 days'::interval, 'counter'::text), ('rt', 'hour', '90 days', 'default'),
             ('rt', 'day', '400 days', 'counter'), ('rt', 'week', NULL, 'default'), ('rt', 'month', NULL, 'default'),
             ('rt_md', 'minute', '7 days', 'default'), ('rt_md', 'day', NULL, 'default')$$,
    'retention_policies shows the overrides (set_by counter); the other counter keeps the defaults'
);
SELECT results_eq(
    $$SELECT c.name, r.granularity, r.keep FROM tally.retention AS r JOIN tally.counters AS c ON c.id = r.counter_id
      ORDER BY 1, 2$$,
    $$VALUES ('rt'::text, 'day'::text, '400 days'::interval), ('rt', 'minute', '30 days')$$,
    'the overrides are rows of tally.retention'
);
SELECT results_eq(
    $$SELECT tally._keep(id, 'minute'), tally._cutoff(id, 'minute', '2024-06-15 12:34:56+00'),
             tally._cutoff(id, 'day', '2024-06-15 12:34:56+00')
      FROM rt_ids WHERE name = 'rt'$$,
    $$VALUES ('30 days'::interval, '2024-05-16 12:34+00'::timestamptz, '2023-05-12 00:00+00'::timestamptz)$$,
    '_keep and _cutoff follow the override'
);
SELECT results_eq(
    'SELECT * FROM rt_partman ORDER BY 1',
    $$VALUES ('tally.rollup_day'::text, NULL::text), ('tally.rollup_hour', '90 days'),
             ('tally.rollup_minute', '30 days'), ('tally.rollup_month', NULL), ('tally.rollup_week', NULL)$$,
    'pg_partman retention: minute the longest (30 days); day NULL, rt_md keeps its days forever'
);
SELECT tally.set_retention('rt_md', 'day', '2 years');
SELECT is(
    (SELECT retention FROM rt_partman WHERE parent_table = 'tally.rollup_day'), '2 years',
    'once every counter keeping days has a limit, day retention is the longest (2 years > 400 days)'
);
SELECT tally.set_retention('rt', 'minute', '14 days');
SELECT results_eq(
    $$SELECT r.keep FROM tally.retention AS r WHERE r.counter_id = (SELECT id FROM rt_ids WHERE name = 'rt')
      AND r.granularity = 'minute'$$,
    $$VALUES ('14 days'::interval)$$,
    'setting an override again replaces it (one row)'
);
SELECT tally.set_retention('rt', 'minute', NULL);
SELECT results_eq(
    $$SELECT keep, set_by, oldest_bucket_kept FROM tally.retention_policies WHERE counter = 'rt' AND granularity = 'minute'$$,
    $$VALUES (NULL::interval, 'counter'::text, '-infinity'::timestamptz)$$,
    'p_keep NULL: the counter keeps its minutes forever (an override, cutoff -infinity)'
);
SELECT is(
    (SELECT retention FROM rt_partman WHERE parent_table = 'tally.rollup_minute'), NULL,
    'pg_partman retention of rollup_minute is NULL once a counter keeps minutes forever'
);

-- 3. Defaults (p_counter NULL) apply to every counter without an override.
SELECT lives_ok($$SELECT tally.set_retention(NULL, 'hour', '30 days')$$, 'a default is set with p_counter NULL');
SELECT tally.set_retention(NULL, 'minute', '2 days');
SELECT results_eq(
    $$SELECT name, default_retention FROM tally.granularities ORDER BY ord$$,
    $$VALUES ('minute'::text, '2 days'::interval), ('hour', '30 days'), ('day', NULL), ('week', NULL), ('month', NULL)$$,
    'the defaults are stored in tally.granularities.default_retention'
);
SELECT results_eq(
    $$SELECT counter, granularity, keep, set_by FROM tally.retention_policies WHERE granularity IN ('minute', 'hour')$$,
    $$VALUES ('rt'::text, 'minute'::text, NULL::interval, 'counter'::text), ('rt', 'hour', '30 days', 'default'),
             ('rt_md', 'minute', '2 days', 'default')$$,
    'counters without an override follow the new defaults; an override wins'
);
SELECT is(
    (SELECT retention FROM rt_partman WHERE parent_table = 'tally.rollup_hour'), '30 days',
    'pg_partman retention of rollup_hour follows the default'
);

-- 4. Refusals change nothing.
CREATE TEMP TABLE rt_state ON COMMIT DROP AS
SELECT (SELECT array_agg(r ORDER BY r.counter_id, r.granularity) FROM tally.retention AS r)::text AS retention,
       (SELECT array_agg(g ORDER BY g.ord) FROM tally.granularities AS g)::text AS defaults,
       (SELECT array_agg(p ORDER BY p.parent_table) FROM rt_partman AS p)::text AS partman;
SELECT throws_ok(
    $$SELECT tally.set_retention('rt', 'fortnight', '30 days')$$,
    '22023', 'tally.set_retention: unknown granularity "fortnight"',
    'an unknown granularity is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT tally.set_retention('rt', 'all', '30 days')$$, '22023', 'tally.set_retention: unknown granularity "all"',
    'the all-time total has no retention'
);
SELECT throws_ok(
    $$SELECT tally.set_retention(NULL, NULL, '30 days')$$, '22004', 'tally.set_retention: granularity must not be NULL',
    'a NULL granularity is refused (22004, as everywhere)'
);
SELECT throws_ok(
    $$SELECT tally.set_retention('rt', 'hour', '59 minutes')$$,
    '22023', 'tally.set_retention: retention 00:59:00 is shorter than one hour bucket',
    'a retention shorter than one bucket is refused'
);
SELECT throws_ok(
    $$SELECT tally.set_retention('rt', 'week', '6 days')$$, '22023', NULL, 'a week bucket needs at least 7 days'
);
SELECT throws_ok(
    $$SELECT tally.set_retention('rt', 'month', '4 weeks')$$, '22023', NULL, 'a month bucket needs at least a month'
);
SELECT throws_ok(
    $$SELECT tally.set_retention(NULL, 'day', '0 days')$$, '22023', NULL, 'a zero default retention is refused'
);
SELECT throws_ok(
    $$SELECT tally.set_retention(NULL, 'day', '-1 day')$$, '22023', NULL, 'a negative retention is refused'
);
SELECT throws_ok(
    $$SELECT tally.set_retention('nope', 'minute', '30 days')$$,
    '42704', 'tally.set_retention: unknown counter "nope"',
    'an unknown counter is refused with undefined_object'
);
SELECT throws_ok(
    $$SELECT tally.set_retention('rt_md', 'hour', '30 days')$$,
    '22023', 'tally.set_retention: counter "rt_md" does not keep hour buckets',
    'a granularity the counter does not keep is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT tally.set_retention('', 'minute', '30 days')$$, '22004', NULL,
    'an empty counter name is refused with null_value_not_allowed'
);
SELECT results_eq(
    $$SELECT (SELECT array_agg(r ORDER BY r.counter_id, r.granularity) FROM tally.retention AS r)::text,
             (SELECT array_agg(g ORDER BY g.ord) FROM tally.granularities AS g)::text,
             (SELECT array_agg(p ORDER BY p.parent_table) FROM rt_partman AS p)::text$$,
    'SELECT retention, defaults, partman FROM rt_state',
    'refusals change no override, no default, no pg_partman retention'
);

-- 5. A fold skips buckets older than the retention; the total and the
-- coarser granularities still count them; reads hide them, pending or folded.
-- rt_f keeps minutes 1 day, hours 3 days, days forever.
SELECT tally.create_counter('rt_f', '{minute,hour,day}');
SELECT tally.set_retention('rt_f', 'minute', '1 day');
SELECT tally.set_retention('rt_f', 'hour', '3 days');
CREATE TEMP TABLE rt_f ON COMMIT DROP AS
SELECT c.id, tally._cutoff(c.id, 'minute') AS minute_cutoff,
       'rollup_minute_p' || to_char(now() - interval '5 days', 'YYYY_MM_DD') AS old_minute_part
FROM tally.counters AS c WHERE c.name = 'rt_f';
SELECT hasnt_table('tally', (SELECT old_minute_part FROM rt_f), 'precondition: no minute partition 5 days back');
SELECT tally.increment_counters(
    '{rt_f,rt_f,rt_f,rt_f,rt_f}', '{k,k,k,edge,edge}', '{1,10,100,1000,2000}',
    ARRAY[now(), now() - interval '2 days', now() - interval '5 days',
          (SELECT minute_cutoff FROM rt_f), (SELECT minute_cutoff - interval '1 microsecond' FROM rt_f)]
);
-- What readers see of rt_f.
CREATE TEMP VIEW rt_reads AS
SELECT g.g AS granularity, k.key, s.bucket, s.value
FROM unnest(ARRAY['minute', 'hour', 'day']) AS g (g), unnest(ARRAY['k', 'edge']) AS k (key),
     tally.counter_series('rt_f', k.key, g.g, now() - interval '10 days', now() + interval '1 hour') AS s
UNION ALL
SELECT 'all', t.key, NULL, t.value FROM tally.top_keys('rt_f', 'all', NULL) AS t;
CREATE TEMP TABLE rt_expected ON COMMIT DROP AS
SELECT * FROM (VALUES
    ('minute', 'k', date_trunc('minute', now(), 'UTC'), 1::bigint),
    ('minute', 'edge', (SELECT minute_cutoff FROM rt_f), 1000),
    ('hour', 'k', date_trunc('hour', now() - interval '2 days', 'UTC'), 10),
    ('hour', 'k', date_trunc('hour', now(), 'UTC'), 1),
    ('day', 'k', date_trunc('day', now() - interval '5 days', 'UTC'), 100),
    ('day', 'k', date_trunc('day', now() - interval '2 days', 'UTC'), 10),
    ('day', 'k', date_trunc('day', now(), 'UTC'), 1),
    ('all', 'edge', NULL, 3000),
    ('all', 'k', NULL, 111)
) AS v (granularity, key, bucket, value)
UNION ALL  -- both edge increments are within the hour and day retention
SELECT g.g, 'edge', date_trunc(g.g, e.at, 'UTC'), sum(e.value)::bigint
FROM unnest(ARRAY['hour', 'day']) AS g (g),
     (SELECT minute_cutoff, 1000::bigint FROM rt_f
      UNION ALL SELECT minute_cutoff - interval '1 microsecond', 2000 FROM rt_f) AS e (at, value)
GROUP BY 1, 2, 3;
SELECT set_eq(
    $$SELECT granularity, key, bucket FROM rt_reads WHERE granularity IN ('minute', 'hour', 'day')$$,
    $$SELECT granularity, key, bucket FROM rt_expected WHERE granularity IN ('minute', 'hour', 'day')$$,
    'pending: counter_series lists only the buckets within retention (minutes of 1 day, hours of 3, all days)'
);
SELECT results_eq(
    'SELECT * FROM rt_reads ORDER BY 1, 2, 3', 'SELECT * FROM rt_expected ORDER BY 1, 2, 3',
    'pending: values per bucket, and the all-time totals count everything (111, 3000)'
);
SELECT is_empty(
    $$SELECT * FROM tally.top_keys('rt_f', 'minute', now() - interval '2 days')$$,
    'pending: top_keys of a minute older than the retention is empty'
);
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('rt_f', 'hour', now() - interval '2 days')$$,
    $$VALUES ('k'::text, 10::bigint)$$,
    'pending: top_keys of the hour within retention lists it'
);
CREATE TEMP TABLE rt_fold ON COMMIT DROP AS SELECT tally._fold() AS n;
SELECT is((SELECT n FROM rt_fold), 5::bigint, 'the fold folds all 5 deltas');
SELECT results_eq(
    $$SELECT r.key, r.bucket, r.value FROM tally.rollup_minute AS r WHERE r.counter_id = (SELECT id FROM rt_f) ORDER BY 1, 2$$,
    $$SELECT 'edge'::text, minute_cutoff, 1000::bigint FROM rt_f
      UNION ALL SELECT 'k', date_trunc('minute', now(), 'UTC'), 1$$,
    'the fold wrote only the minutes within retention (the cutoff minute included, the one before it not)'
);
SELECT results_eq(
    $$SELECT r.key, r.bucket, r.value FROM tally.rollup_hour AS r
      WHERE r.counter_id = (SELECT id FROM rt_f) AND r.key = 'k' ORDER BY 2$$,
    $$VALUES ('k'::text, date_trunc('hour', now() - interval '2 days', 'UTC'), 10::bigint),
             ('k', date_trunc('hour', now(), 'UTC'), 1)$$,
    'the coarser hour rollup counts the increment too old for minutes, not the one too old for hours'
);
SELECT results_eq(
    $$SELECT (sum(r.value) FILTER (WHERE r.key = 'k'))::bigint, (sum(r.value) FILTER (WHERE r.key = 'edge'))::bigint,
             (SELECT t.value FROM tally.totals AS t WHERE t.counter_id = (SELECT id FROM rt_f) AND t.key = 'k')
      FROM tally.rollup_day AS r WHERE r.counter_id = (SELECT id FROM rt_f)$$,
    $$VALUES (111::bigint, 3000::bigint, 111::bigint)$$,
    'the day rollup (kept forever) and the total count every increment'
);
SELECT hasnt_table('tally', (SELECT old_minute_part FROM rt_f), 'the fold created no minute partition for skipped buckets');
SELECT results_eq(
    'SELECT * FROM rt_reads ORDER BY 1, 2, 3', 'SELECT * FROM rt_expected ORDER BY 1, 2, 3',
    'folded: reads are the same as before the fold'
);
SELECT is_empty(
    $$SELECT * FROM tally.top_keys('rt_f', 'minute', now() - interval '2 days')$$,
    'folded: top_keys of a minute older than the retention is empty'
);

-- 6. Shortening a retention hides buckets already folded (the rows stay
-- until tally.maintain() drops their partition).
SELECT tally.set_retention('rt_f', 'hour', '1 day');
SELECT results_eq(
    $$SELECT bucket, value
      FROM tally.counter_series('rt_f', 'k', 'hour', now() - interval '10 days', now() + interval '1 hour')$$,
    $$VALUES (date_trunc('hour', now(), 'UTC'), 1::bigint)$$,
    'counter_series hides a folded hour older than the new retention'
);
SELECT is_empty(
    $$SELECT * FROM tally.top_keys('rt_f', 'hour', now() - interval '2 days')$$,
    'top_keys hides it too'
);
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM tally.rollup_hour AS r WHERE r.counter_id = (SELECT id FROM rt_f) AND r.key = 'k'),
             tally.counter_value('rt_f', 'k')$$,
    $$VALUES (2::bigint, 111::bigint)$$,
    'its row is still stored, and the total is unchanged'
);

-- 7. BUG (sql/retention/tally._cutoff.sql): _cutoff computes p_now - keep in
-- the session time zone (it has no SET timezone = 'UTC'), while folds run in
-- UTC: across a DST change, a session in America/New_York gets a cutoff one
-- hour off from the fold's, and reads there differ from reads in UTC.
-- 2026-11-05 12:00 UTC minus 7 days is 2026-10-29 12:00 UTC; New York left
-- DST on 2026-11-01.
SELECT tally.set_retention(NULL, 'minute', '7 days');
SET LOCAL timezone = 'America/New_York';
CREATE TEMP TABLE rt_tz ON COMMIT DROP AS
SELECT tally._cutoff(id, 'minute', '2026-11-05 12:00+00') AS cutoff FROM rt_ids WHERE name = 'rt_md';
SET LOCAL timezone = 'UTC';
SELECT is(
    (SELECT cutoff FROM rt_tz), tally._cutoff((SELECT id FROM rt_ids WHERE name = 'rt_md'), 'minute', '2026-11-05 12:00+00'),
    '_cutoff is the same in any session time zone (2026-10-29 12:00 UTC)'
);

SELECT * FROM finish();
ROLLBACK;
