-- tally.reconcile: repair the given keys of a counter and say what changed:
-- coarser buckets (and the total) rebuilt from their finer buckets, and a
-- correction delta appended toward the registered source of truth; every
-- change recorded in tally.corrections; check_drift clean afterwards;
-- refusals change nothing.
BEGIN;
SELECT plan(34);

SET LOCAL timezone = 'UTC';

CREATE TEMP TABLE rc_at ON COMMIT DROP AS SELECT now() - interval '1 hour' AS at;
SELECT tally.create_counter('rc');
SELECT tally.increment_counter('rc', 'k', 3, (SELECT at FROM rc_at));
SELECT tally.increment_counter('rc', 'k', 4, (SELECT at FROM rc_at));
SELECT tally.increment_counter('rc', 'j', 5, (SELECT at FROM rc_at));
CREATE TEMP TABLE rc_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
CREATE TEMP TABLE rc_id ON COMMIT DROP AS SELECT id FROM tally.counters WHERE name = 'rc';
CREATE TEMP VIEW rc_corr AS
SELECT key, granularity, bucket, delta, reason, applied_at, applied_by
FROM tally.corrections WHERE counter_id = (SELECT id FROM rc_id) ORDER BY id;

SELECT function_returns(
    'tally', 'reconcile', ARRAY['text', 'text[]'], 'setof record',
    'reconcile returns a set of (key, granularity, bucket, delta, reason) rows'
);

-- 1. Nothing to repair
SELECT is_empty($$SELECT * FROM tally.reconcile('rc', '{k,j,never_counted}')$$, 'a consistent counter: nothing repaired');
SELECT is_empty('SELECT * FROM rc_corr', 'and no correction recorded');

-- 2. A hand-corrupted day bucket
UPDATE tally.rollup_day SET value = value + 7
WHERE counter_id = (SELECT id FROM rc_id) AND key = 'k' AND bucket = date_trunc('day', (SELECT at FROM rc_at), 'UTC');
SELECT is((SELECT count(*) FROM tally.check_drift('rc')), 3::bigint, 'precondition: check_drift finds the corruption');
SELECT results_eq(
    $$SELECT * FROM tally.reconcile('rc', '{k,j}')$$,
    $$SELECT 'k'::text, 'day'::text, date_trunc('day', at, 'UTC'), -7::bigint, 'internal'::text FROM rc_at$$,
    'reconcile rebuilds the day from its hours: one correction, delta -7 (week and month agree again)'
);
SELECT is(
    (SELECT value FROM tally.rollup_day WHERE counter_id = (SELECT id FROM rc_id) AND key = 'k'), 7::bigint,
    'the day bucket holds the sum of its hours again'
);
SELECT results_eq(
    'SELECT * FROM rc_corr',
    $$SELECT 'k'::text, 'day'::text, date_trunc('day', at, 'UTC'), -7::bigint,
             'internal: day bucket rebuilt from its hour buckets'::text, now(), session_user
      FROM rc_at$$,
    'tally.corrections records it: key, granularity, bucket, delta, reason, when, by whom'
);
SELECT is_empty($$SELECT * FROM tally.check_drift('rc')$$, 'check_drift is clean afterwards');
SELECT is((SELECT inconsistent_keys FROM tally.drift WHERE counter = 'rc'), 0, 'tally.drift: 0 inconsistent keys');
SELECT is((SELECT status FROM tally.health WHERE "check" = 'drift'), 'ok', 'tally.health: drift ok again');
SELECT is(tally.counter_value('rc', 'k'), 7::bigint, 'the total was never touched');
SELECT is_empty($$SELECT * FROM tally.reconcile('rc', '{k}')$$, 'a second reconcile has nothing to do');

-- 3. Other levels, finest first: a corrupted hour is rebuilt from its minutes.
UPDATE tally.rollup_hour SET value = value + 1 WHERE counter_id = (SELECT id FROM rc_id) AND key = 'j';
SELECT results_eq(
    $$SELECT key, granularity, bucket, delta, reason FROM tally.reconcile('rc', '{j}')$$,
    $$SELECT 'j'::text, 'hour'::text, date_trunc('hour', at, 'UTC'), -1::bigint, 'internal'::text FROM rc_at$$,
    'a corrupted hour is rebuilt from its minutes (and then its day adds up again)'
);
SELECT is_empty($$SELECT * FROM tally.check_drift('rc', 100, '{j}')$$, 'j is clean afterwards');
UPDATE tally.totals SET value = value + 2 WHERE counter_id = (SELECT id FROM rc_id) AND key = 'j';
SELECT results_eq(
    $$SELECT key, granularity, bucket, delta, reason FROM tally.reconcile('rc', '{j}')$$,
    $$VALUES ('j'::text, 'all'::text, NULL::timestamptz, -2::bigint, 'internal'::text)$$,
    'a corrupted total is rebuilt from the months'
);
SELECT is(tally.counter_value('rc', 'j'), 5::bigint, 'the total is 5 again');
SELECT is(
    (SELECT reason FROM rc_corr WHERE key = 'j' AND granularity = 'all'),
    'internal: all bucket rebuilt from its month buckets',
    'recorded with its reason'
);
DELETE FROM tally.rollup_month WHERE counter_id = (SELECT id FROM rc_id) AND key = 'j';
SELECT results_eq(
    $$SELECT key, granularity, bucket, delta, reason FROM tally.reconcile('rc', '{j}')$$,
    $$SELECT 'j'::text, 'month'::text, date_trunc('month', at, 'UTC'), 5::bigint, 'internal'::text FROM rc_at$$,
    'a missing month is put back from its days'
);

-- 4. A registered source of truth that disagrees
CREATE TABLE public.pgtap_follow (subject text NOT NULL, follower text NOT NULL);
INSERT INTO public.pgtap_follow VALUES ('k', 'a'), ('k', 'b'), ('k', 'c'), ('k', 'd'), ('k', 'e'), ('k', 'f'),
                                       ('k', 'g'), ('j', 'a'), ('j', 'b'), ('i', 'a');
SELECT tally.set_source('rc', 'SELECT count(*) FROM public.pgtap_follow WHERE subject = $1');
CREATE TEMP TABLE rc_pending ON COMMIT DROP AS SELECT count(*) AS n FROM tally.delta;
SELECT results_eq(
    $$SELECT * FROM tally.reconcile('rc', '{k,j,i}')$$,
    $$VALUES ('j'::text, 'all'::text, NULL::timestamptz, -3::bigint, 'source'::text),
             ('i', 'all', NULL, 1, 'source')$$,
    'keys off the source get a correction delta (truth - counter); k agrees and is left alone'
);
SELECT results_eq(
    $$SELECT tally.counter_value('rc', 'k'), tally.counter_value('rc', 'j'), tally.counter_value('rc', 'i')$$,
    $$VALUES (7::bigint, 2::bigint, 1::bigint)$$,
    'counter_value then equals the truth'
);
SELECT is(
    (SELECT count(*) FROM tally.delta) - (SELECT n FROM rc_pending), 2::bigint,
    'the corrections are appended as deltas, like increments'
);
SELECT results_eq(
    $$SELECT key, granularity, bucket, delta, reason FROM rc_corr WHERE reason LIKE 'source:%'$$,
    $$VALUES ('j'::text, 'all'::text, NULL::timestamptz, -3::bigint,
              'source: the source of truth said 2, the counter 5'::text),
             ('i', 'all', NULL, 1, 'source: the source of truth said 1, the counter 0')$$,
    'tally.corrections records them'
);
SELECT is_empty($$SELECT * FROM tally.check_drift('rc', 100, '{k,j,i}')$$, 'check_drift is clean afterwards');
CREATE TEMP TABLE rc_fold2 ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is_empty($$SELECT * FROM tally.check_drift('rc', 100, '{k,j,i}')$$, 'and after the corrections are folded');
SELECT is_empty($$SELECT * FROM tally.reconcile('rc', '{k,j,i}')$$, 'a second reconcile has nothing to do');

-- A source that has no row for a key (NULL) while the counter reads 0.
CREATE TABLE public.pgtap_profile (id text PRIMARY KEY, followers bigint NOT NULL);
INSERT INTO public.pgtap_profile VALUES ('k', 7), ('j', 2), ('i', 1);
SELECT tally.set_source('rc', 'SELECT followers FROM public.pgtap_profile WHERE id = $1');
SELECT is_empty(
    $$SELECT * FROM tally.reconcile('rc', '{nobody}')$$,
    'a key the source has no row for and the counter never counted needs no correction'
);

-- A key repeated is repaired once.
UPDATE tally.rollup_day SET value = value + 7 WHERE counter_id = (SELECT id FROM rc_id) AND key = 'k';
SELECT results_eq(
    $$SELECT key, granularity, delta, reason FROM tally.reconcile('rc', '{k,k}')$$,
    $$VALUES ('k'::text, 'day'::text, -7::bigint, 'internal'::text)$$,
    'a key given twice is repaired once'
);

-- Retention history: an hour whose minutes were never kept (an increment
-- already past the 7-day minute retention when folded) is not evidence of
-- drift once the minute retention is lengthened.
SELECT tally.create_counter('rc_ret');
SELECT tally.increment_counter('rc_ret', 'old', 4, now() - interval '8 days');
CREATE TEMP TABLE rc_fold3 ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT tally.set_retention('rc_ret', 'minute', NULL);
CREATE TEMP TABLE rc_ret_found ON COMMIT DROP AS SELECT * FROM tally.check_drift('rc_ret', 100, '{old}');
CREATE TEMP TABLE rc_ret_fixed ON COMMIT DROP AS SELECT * FROM tally.reconcile('rc_ret', '{old}');
SELECT is_empty('SELECT * FROM rc_ret_found', 'an hour without minutes from before the retention change is not drift');
SELECT is(tally.counter_value('rc_ret', 'old'), 4::bigint, 'reconcile keeps the all-time total of 4');

-- 5. Refusals
CREATE TEMP TABLE rc_n ON COMMIT DROP AS SELECT count(*) AS n FROM tally.corrections;
SELECT throws_ok(
    $$SELECT * FROM tally.reconcile('rc', NULL)$$, '22004', 'tally.reconcile: keys must be an array without NULLs',
    'NULL keys are refused with null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT * FROM tally.reconcile('rc', ARRAY['k', NULL])$$, '22004',
    'tally.reconcile: keys must be an array without NULLs',
    'a NULL key in the array is refused with null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT * FROM tally.reconcile('rc', ARRAY['j', ''])$$, '22004', 'tally.reconcile: key must not be NULL or empty',
    'an empty key is refused'
);
SELECT throws_ok(
    $$SELECT * FROM tally.reconcile('rc_nope', '{k}')$$, '42704', 'tally.reconcile: unknown counter "rc_nope"',
    'an unknown counter is refused with undefined_object'
);
SELECT is((SELECT count(*) FROM tally.corrections), (SELECT n FROM rc_n), 'the refusals recorded no correction');

SELECT * FROM finish();
ROLLBACK;
