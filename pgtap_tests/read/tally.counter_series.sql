-- tally.counter_series: UTC buckets (ISO weeks start on Monday), only the
-- non-empty buckets, ascending, overlapping [p_from, p_to); folded plus
-- pending; refusals.
BEGIN;
SELECT plan(31);


-- Buckets are UTC whatever the session time zone (UTC+13 in January here).
SET LOCAL timezone = 'Pacific/Auckland';

-- This file is about buckets, not retention: its increments are in 2024,
-- older than the default retention of minute and hour buckets, so keep every
-- bucket here (rolled back with the test).
SELECT tally.set_retention(NULL, 'minute', NULL);
SELECT tally.set_retention(NULL, 'hour', NULL);

SELECT tally.create_counter('cs_all');
SELECT tally.create_counter('cs_day', '{day}');
SELECT tally.increment_counters(
    '{cs_all,cs_all,cs_all,cs_all,cs_all,cs_all,cs_all,cs_all,cs_all,cs_day}',
    '{k,k,k,k,k,k,k,k,other,k}',
    '{1,2,4,8,16,32,5,-5,100,1}',
    ARRAY[
        '2024-01-01 00:00:00+00',  -- Monday
        '2024-01-03 10:30:00+00',  -- Wednesday
        '2024-01-03 23:59:59+00',  -- Wednesday in UTC, Thursday in Auckland
        '2024-01-07 23:59:59+00',  -- Sunday: still the week of 2024-01-01
        '2024-01-08 00:00:00+00',  -- Monday: next week
        '2024-02-29 12:00:00+00',  -- Thursday of the week of 2024-02-26
        '2024-03-05 09:00:00+00',  -- +5 and -5 the same day: a bucket netting to 0
        '2024-03-05 18:00:00+00',
        '2024-01-03 10:30:00+00',  -- another key
        '2024-01-03 10:30:00+00'   -- another counter
    ]::timestamptz[]
);

-- The expected series, used before and after the fold.
CREATE TEMP TABLE cs_expected_day ON COMMIT DROP AS
SELECT bucket::timestamptz AS bucket, value::bigint AS value
FROM (VALUES ('2024-01-01 00:00+00', 1), ('2024-01-03 00:00+00', 6), ('2024-01-07 00:00+00', 8),
             ('2024-01-08 00:00+00', 16), ('2024-02-29 00:00+00', 32), ('2024-03-05 00:00+00', 0)) AS v (bucket, value);

SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'day', '2024-01-01 00:00+00', '2024-04-01 00:00+00')$$,
    'SELECT bucket, value FROM cs_expected_day ORDER BY bucket',
    'day series (pending): UTC days, non-empty buckets only, ascending, a bucket netting to 0 included'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'week', '2024-01-01 00:00+00', '2024-04-01 00:00+00')$$,
    $$VALUES ('2024-01-01 00:00+00'::timestamptz, 15::bigint), ('2024-01-08 00:00+00', 16),
             ('2024-02-26 00:00+00', 32), ('2024-03-04 00:00+00', 0)$$,
    'week series (pending): ISO weeks starting on Monday'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'week', '2024-01-03 00:00+00', '2024-01-08 00:00+00')$$,
    $$VALUES ('2024-01-01 00:00+00'::timestamptz, 15::bigint)$$,
    '2024-01-03 (a Wednesday) is in the week bucket 2024-01-01'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'month', '2024-01-01 00:00+00', '2024-04-01 00:00+00')$$,
    $$VALUES ('2024-01-01 00:00+00'::timestamptz, 31::bigint), ('2024-02-01 00:00+00', 32),
             ('2024-03-01 00:00+00', 0)$$,
    'month series (pending): calendar months in UTC'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'hour', '2024-01-03 00:00+00', '2024-01-04 00:00+00')$$,
    $$VALUES ('2024-01-03 10:00+00'::timestamptz, 2::bigint), ('2024-01-03 23:00+00', 4)$$,
    'hour series (pending)'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'minute', '2024-01-03 10:00+00', '2024-01-03 11:00+00')$$,
    $$VALUES ('2024-01-03 10:30+00'::timestamptz, 2::bigint)$$,
    'minute series (pending)'
);

-- [p_from, p_to): the bucket containing p_from is included, a bucket starting at p_to is not.
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'day', '2024-01-03 12:00+00', '2024-01-08 00:00+00')$$,
    $$VALUES ('2024-01-03 00:00+00'::timestamptz, 6::bigint), ('2024-01-07 00:00+00', 8)$$,
    'the whole bucket containing p_from is included; the bucket starting at p_to is excluded (pending)'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'week', '2024-01-01 00:00+00', '2024-01-08 00:00+00')$$,
    $$VALUES ('2024-01-01 00:00+00'::timestamptz, 15::bigint)$$,
    'a bucket starting exactly at p_from is included, the week starting at p_to is not'
);
SELECT is_empty(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'day', '2024-01-03 00:00+00', '2024-01-03 00:00+00')$$,
    'an empty range [t, t) at a bucket start lists nothing'
);
SELECT is_empty(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'day', '2023-01-01 00:00+00', '2024-01-01 00:00+00')$$,
    'a range without increments lists nothing'
);
SELECT is_empty(
    $$SELECT * FROM tally.counter_series('cs_all', 'nobody', 'day', '2024-01-01 00:00+00', '2024-04-01 00:00+00')$$,
    'a key without increments lists nothing'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_day', 'k', 'day', '2024-01-01 00:00+00', '2024-04-01 00:00+00')$$,
    $$VALUES ('2024-01-03 00:00+00'::timestamptz, 1::bigint)$$,
    'other counters and other keys are not mixed in'
);

-- p_to inside a bucket: the pending deltas of the whole bucket are listed
-- (filtered by their bucket < p_to, as the folded rows are), so the bucket
-- reads the same before and after the fold.
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'day', '2024-01-01 00:00+00', '2024-01-03 12:00+00')$$,
    $$VALUES ('2024-01-01 00:00+00'::timestamptz, 1::bigint), ('2024-01-03 00:00+00', 6)$$,
    'p_to inside a day bucket (pending): the whole bucket is listed, as after a fold'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'week', '2024-01-03 00:00+00', '2024-01-04 00:00+00')$$,
    $$VALUES ('2024-01-01 00:00+00'::timestamptz, 15::bigint)$$,
    'p_to inside a week bucket (pending): the whole week is listed, as after a fold'
);

-- Folded: the same series.
CREATE TEMP TABLE cs_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is_empty(
    $$SELECT FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id WHERE c.name LIKE 'cs\_%'$$,
    'precondition: everything is folded'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'day', '2024-01-01 00:00+00', '2024-04-01 00:00+00')$$,
    'SELECT bucket, value FROM cs_expected_day ORDER BY bucket',
    'day series (folded) is the same as before the fold'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'week', '2024-01-01 00:00+00', '2024-04-01 00:00+00')$$,
    $$VALUES ('2024-01-01 00:00+00'::timestamptz, 15::bigint), ('2024-01-08 00:00+00', 16),
             ('2024-02-26 00:00+00', 32), ('2024-03-04 00:00+00', 0)$$,
    'week series (folded) is the same as before the fold'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'day', '2024-01-03 12:00+00', '2024-01-08 00:00+00')$$,
    $$VALUES ('2024-01-03 00:00+00'::timestamptz, 6::bigint), ('2024-01-07 00:00+00', 8)$$,
    'the bucket containing p_from is included, the one starting at p_to excluded (folded)'
);
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'day', '2024-01-01 00:00+00', '2024-01-03 12:00+00')$$,
    $$VALUES ('2024-01-01 00:00+00'::timestamptz, 1::bigint), ('2024-01-03 00:00+00', 6)$$,
    'p_to inside a day bucket (folded): the whole bucket is listed'
);

-- Folded plus pending in the same bucket
SELECT tally.increment_counter('cs_all', 'k', 1000, '2024-01-03 05:00+00');
SELECT results_eq(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'day', '2024-01-03 00:00+00', '2024-01-04 00:00+00')$$,
    $$VALUES ('2024-01-03 00:00+00'::timestamptz, 1006::bigint)$$,
    'a bucket sums its folded value and its pending deltas'
);

-- Refusals
SELECT throws_ok(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'day', '2024-01-02 00:00+00', '2024-01-01 00:00+00')$$,
    '22023', NULL,
    'p_from after p_to is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT * FROM tally.counter_series('cs_day', 'k', 'week', '2024-01-01 00:00+00', '2024-02-01 00:00+00')$$,
    '22023', 'tally.counter_series: counter "cs_day" does not keep week buckets',
    'a granularity the counter does not keep is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'year', '2024-01-01 00:00+00', '2024-02-01 00:00+00')$$,
    '22023', 'tally.counter_series: unknown granularity "year"',
    'an unknown granularity is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'all', '2024-01-01 00:00+00', '2024-02-01 00:00+00')$$,
    '22023', 'tally.counter_series: granularity "all" has no buckets',
    'granularity "all" is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', NULL, '2024-01-01 00:00+00', '2024-02-01 00:00+00')$$,
    '22004', 'tally.counter_series: granularity must not be NULL',
    'a NULL granularity is refused with null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'day', NULL, '2024-02-01 00:00+00')$$,
    '22004', 'tally.counter_series: p_from and p_to must not be NULL',
    'a NULL p_from is refused with null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT * FROM tally.counter_series('cs_all', 'k', 'day', '2024-01-01 00:00+00', NULL)$$,
    '22004', NULL,
    'a NULL p_to is refused'
);
SELECT throws_ok(
    $$SELECT * FROM tally.counter_series('cs_nope', 'k', 'day', '2024-01-01 00:00+00', '2024-02-01 00:00+00')$$,
    '42704', 'tally.counter_series: unknown counter "cs_nope"',
    'an unknown counter is refused with undefined_object'
);
SELECT throws_ok(
    $$SELECT * FROM tally.counter_series(NULL, 'k', 'day', '2024-01-01 00:00+00', '2024-02-01 00:00+00')$$,
    '22004', NULL,
    'a NULL counter name is refused'
);
SELECT throws_ok(
    $$SELECT * FROM tally.counter_series('cs_all', NULL, 'day', '2024-01-01 00:00+00', '2024-02-01 00:00+00')$$,
    '22004', 'tally.counter_series: key must not be NULL or empty',
    'a NULL key is refused with null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT * FROM tally.counter_series('cs_all', repeat('x', 513), 'day', '2024-01-01 00:00+00',
                                         '2024-02-01 00:00+00')$$,
    '22001', NULL,
    'a key over 512 bytes is refused with string_data_right_truncation'
);

SELECT * FROM finish();
ROLLBACK;
