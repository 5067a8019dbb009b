-- tally.top_keys: keys of one bucket (or all time) by value descending, ties
-- by key, limited; pending deltas included, same before and after a fold;
-- refusals.
BEGIN;
SELECT plan(26);


-- Buckets are UTC whatever the session time zone.
SET LOCAL timezone = 'Pacific/Auckland';

-- This file is about buckets, not retention: its increments are in 2024,
-- older than the default retention of minute and hour buckets, so keep every
-- bucket here (rolled back with the test).
SELECT tally.set_retention(NULL, 'minute', NULL);
SELECT tally.set_retention(NULL, 'hour', NULL);

SELECT tally.create_counter('tk');
SELECT tally.create_counter('tk_day', '{day}');
SELECT tally.increment_counters(
    '{tk,tk,tk,tk,tk,tk,tk,tk,tk_day}',
    '{a,a,b,c,d,e,z,a,a}',
    '{2,3,7,5,1,-3,100,10,1000}',
    ARRAY[
        '2024-01-03 10:15+00', '2024-01-03 23:30+00', '2024-01-03 10:45+00', '2024-01-03 12:00+00',
        '2024-01-03 00:00+00', '2024-01-03 08:00+00',
        '2024-01-04 09:00+00',  -- next day, same ISO week
        '2023-12-31 09:00+00',  -- Sunday: previous week, previous month
        '2024-01-03 10:15+00'   -- another counter
    ]::timestamptz[]
);

SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tk', 'day', '2024-01-03 15:00+00', 3)$$,
    $$VALUES ('b'::text, 7::bigint), ('a', 5), ('c', 5)$$,
    'day bucket (pending): highest value first, ties broken by key, limited'
);
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tk', 'day', '2024-01-03 00:00+00')$$,
    $$VALUES ('b'::text, 7::bigint), ('a', 5), ('c', 5), ('d', 1), ('e', -3)$$,
    'the default limit (10) lists every key of the bucket, negative values last'
);
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tk', 'day', '2024-01-03 15:00+00', 1)$$,
    $$VALUES ('b'::text, 7::bigint)$$,
    'limit 1 gives the top key'
);
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tk', 'hour', '2024-01-03 10:59:59+00')$$,
    $$VALUES ('b'::text, 7::bigint), ('a', 2)$$,
    'hour bucket: only the increments of that UTC hour'
);
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tk', 'week', '2024-01-03 00:00+00')$$,
    $$VALUES ('z'::text, 100::bigint), ('b', 7), ('a', 5), ('c', 5), ('d', 1), ('e', -3)$$,
    'week bucket: the ISO week of Monday 2024-01-01, without Sunday 2023-12-31'
);
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tk', 'month', '2023-12-15 00:00+00')$$,
    $$VALUES ('a'::text, 10::bigint)$$,
    'month bucket: December 2023'
);
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tk', 'all', NULL)$$,
    $$VALUES ('z'::text, 100::bigint), ('a', 15), ('b', 7), ('c', 5), ('d', 1), ('e', -3)$$,
    'granularity all: all-time values, p_bucket ignored (NULL allowed)'
);
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tk', 'all', '1999-01-01 00:00+00', 2)$$,
    $$VALUES ('z'::text, 100::bigint), ('a', 15)$$,
    'granularity all with a limit, whatever p_bucket'
);
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tk_day', 'all', NULL, 10000)$$,
    $$VALUES ('a'::text, 1000::bigint)$$,
    'limit 10000 is accepted; other counters are not mixed in'
);
SELECT is_empty(
    $$SELECT * FROM tally.top_keys('tk', 'day', '2024-01-05 00:00+00')$$,
    'a bucket without increments lists nothing'
);

-- Same before and after a fold
CREATE TEMP TABLE tk_before_day ON COMMIT DROP AS
SELECT * FROM tally.top_keys('tk', 'day', '2024-01-03 15:00+00');
CREATE TEMP TABLE tk_before_all ON COMMIT DROP AS
SELECT * FROM tally.top_keys('tk', 'all', NULL);
CREATE TEMP TABLE tk_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is_empty(
    $$SELECT FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id WHERE c.name LIKE 'tk%'$$,
    'precondition: everything is folded'
);
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tk', 'day', '2024-01-03 15:00+00')$$,
    $$SELECT * FROM tk_before_day ORDER BY value DESC, key$$,
    'day bucket: the same keys and values after the fold'
);
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tk', 'all', NULL)$$,
    $$SELECT * FROM tk_before_all ORDER BY value DESC, key$$,
    'all time: the same keys and values after the fold'
);

-- Folded plus pending
SELECT tally.increment_counter('tk', 'b', 10, '2024-01-03 20:00+00');
SELECT tally.increment_counter('tk', 'new', 6, '2024-01-03 20:00+00');
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tk', 'day', '2024-01-03 15:00+00', 3)$$,
    $$VALUES ('b'::text, 17::bigint), ('new', 6), ('a', 5)$$,
    'a bucket ranks folded values plus pending deltas'
);
SELECT results_eq(
    $$SELECT * FROM tally.top_keys('tk', 'all', NULL, 3)$$,
    $$VALUES ('z'::text, 100::bigint), ('b', 17), ('a', 15)$$,
    'all time ranks folded totals plus pending deltas'
);

-- Refusals
SELECT throws_ok(
    $$SELECT * FROM tally.top_keys('tk', 'day', now(), 0)$$,
    '22023', 'tally.top_keys: limit 0 is out of range',
    'limit 0 is refused with invalid_parameter_value'
);
SELECT throws_ok($$SELECT * FROM tally.top_keys('tk', 'day', now(), -1)$$, '22023', NULL, 'a negative limit is refused');
SELECT throws_ok($$SELECT * FROM tally.top_keys('tk', 'day', now(), 10001)$$, '22023', NULL, 'limit 10001 is refused');
SELECT throws_ok(
    $$SELECT * FROM tally.top_keys('tk', 'all', NULL, NULL)$$,
    '22023', 'tally.top_keys: limit NULL is out of range',
    'a NULL limit is refused'
);
SELECT throws_ok(
    $$SELECT * FROM tally.top_keys('tk_day', 'hour', now())$$,
    '22023', 'tally.top_keys: counter "tk_day" does not keep hour buckets',
    'a granularity the counter does not keep is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT * FROM tally.top_keys('tk', 'year', now())$$,
    '22023', 'tally.top_keys: unknown granularity "year"',
    'an unknown granularity is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT * FROM tally.top_keys('tk', NULL, now())$$,
    '22004', 'tally.top_keys: granularity must not be NULL',
    'a NULL granularity is refused with null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT * FROM tally.top_keys('tk', 'day', NULL)$$,
    '22023', 'tally.top_keys: bucket NULL is not a finite timestamp',
    'a NULL bucket is refused for a bucketed granularity'
);
SELECT throws_ok(
    $$SELECT * FROM tally.top_keys('tk', 'day', 'infinity')$$, '22023', NULL,
    'an infinite bucket is refused'
);
SELECT throws_ok(
    $$SELECT * FROM tally.top_keys('tk_nope', 'all', NULL)$$,
    '42704', 'tally.top_keys: unknown counter "tk_nope"',
    'an unknown counter is refused with undefined_object'
);
SELECT throws_ok(
    $$SELECT * FROM tally.top_keys(NULL, 'all', NULL)$$,
    '22004', 'tally.top_keys: counter name must not be NULL or empty',
    'a NULL counter name is refused with null_value_not_allowed'
);

SELECT * FROM finish();
ROLLBACK;
