-- Hostile and broken input (issue 7): the one checklist. Every refusal names
-- the function, has its specific SQLSTATE and changes nothing; hostile text
-- (quotes, semicolons, unicode, SQL) is data, never code. Some of these are
-- also tested beside the function they belong to.
BEGIN;
SELECT plan(139);

SELECT tally.create_counter('hi');
SELECT tally.create_counter('hi_durable', '{hour,day}', true);
SELECT tally.create_counter('hi_total', '{}');
SELECT tally.increment_counter('hi', 'seed', 7, now() - interval '1 hour');
SELECT tally.set_source('hi', 'SELECT 7::bigint WHERE $1 IS NOT NULL');

-- A fingerprint of everything a refusal must leave alone.
CREATE TEMP VIEW hi_state AS
SELECT 'counters' AS t, count(*) AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h
FROM tally.counters AS x
UNION ALL
SELECT 'delta', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM tally.delta AS x
UNION ALL
SELECT 'event_ids', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM tally.event_ids AS x
UNION ALL
SELECT 'retention', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM tally.retention AS x
UNION ALL
SELECT 'sources', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM tally.sources AS x
UNION ALL
SELECT 'totals', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM tally.totals AS x
UNION ALL
SELECT 'quarantine', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM tally.quarantine AS x
UNION ALL
SELECT 'granularities', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), ''))
FROM tally.granularities AS x;
CREATE TEMP TABLE hi_before AS SELECT * FROM hi_state;

-- 1. NULL or empty counter name
SELECT throws_ok($$SELECT tally.create_counter(NULL)$$, '22004',
                 'tally.create_counter: name must not be NULL or empty', 'create_counter: NULL name');
SELECT throws_ok($$SELECT tally.create_counter('')$$, '22004',
                 'tally.create_counter: name must not be NULL or empty', 'create_counter: empty name');
SELECT throws_ok($$SELECT tally.increment_counter(NULL, 'k')$$, '22004',
                 'tally.increment_counter: counter name must not be NULL or empty', 'increment_counter: NULL counter');
SELECT throws_ok($$SELECT tally.increment_counter('', 'k')$$, '22004',
                 'tally.increment_counter: counter name must not be NULL or empty', 'increment_counter: empty counter');
SELECT throws_ok($$SELECT tally.counter_value(NULL, 'k')$$, '22004',
                 'tally.counter_value: counter name must not be NULL or empty', 'counter_value: NULL counter');
SELECT throws_ok($$SELECT tally.counter_value('', 'k')$$, '22004',
                 'tally.counter_value: counter name must not be NULL or empty', 'counter_value: empty counter');
SELECT throws_ok($$SELECT * FROM tally.counter_series('', 'k', 'day', now() - interval '1 day', now())$$, '22004',
                 'tally.counter_series: counter name must not be NULL or empty', 'counter_series: empty counter');
SELECT throws_ok($$SELECT * FROM tally.top_keys(NULL, 'all', now())$$, '22004',
                 'tally.top_keys: counter name must not be NULL or empty', 'top_keys: NULL counter');
SELECT throws_ok($$SELECT tally.drop_counter('')$$, '22004',
                 'tally.drop_counter: counter name must not be NULL or empty', 'drop_counter: empty counter');
SELECT throws_ok($$SELECT tally.increment_counters(ARRAY['hi', NULL], '{k,k}', '{1,1}')$$, '22004',
                 'tally.increment_counters: element 2: counter name must not be NULL or empty',
                 'increment_counters: a NULL counter element');
SELECT throws_ok($$SELECT tally.increment_counters('{hi,""}', '{k,k}', '{1,1}')$$, '22004',
                 'tally.increment_counters: element 2: counter name must not be NULL or empty',
                 'increment_counters: an empty counter element');

-- 2. NULL or empty key
SELECT throws_ok($$SELECT tally.increment_counter('hi', NULL)$$, '22004',
                 'tally.increment_counter: key must not be NULL or empty', 'increment_counter: NULL key');
SELECT throws_ok($$SELECT tally.increment_counter('hi', '')$$, '22004',
                 'tally.increment_counter: key must not be NULL or empty', 'increment_counter: empty key');
SELECT throws_ok($$SELECT tally.counter_value('hi', NULL)$$, '22004',
                 'tally.counter_value: key must not be NULL or empty', 'counter_value: NULL key');
SELECT throws_ok($$SELECT tally.counter_value('hi', '')$$, '22004',
                 'tally.counter_value: key must not be NULL or empty', 'counter_value: empty key');
SELECT throws_ok($$SELECT * FROM tally.counter_series('hi', '', 'day', now() - interval '1 day', now())$$, '22004',
                 'tally.counter_series: key must not be NULL or empty', 'counter_series: empty key');
SELECT throws_ok($$SELECT tally.increment_counters('{hi,hi}', ARRAY['k', NULL], '{1,1}')$$, '22004',
                 'tally.increment_counters: element 2: key must not be NULL or empty',
                 'increment_counters: a NULL key element');
SELECT throws_ok($$SELECT tally.increment_counters('{hi,hi}', '{k,""}', '{1,1}')$$, '22004',
                 'tally.increment_counters: element 2: key must not be NULL or empty',
                 'increment_counters: an empty key element');

-- 3. Unknown counter, everywhere a counter is named
SELECT throws_ok($$SELECT tally.increment_counter('hi_nope', 'k')$$, '42704',
                 'tally.increment_counter: unknown counter "hi_nope"', 'increment_counter: unknown counter');
SELECT throws_ok($$SELECT tally.counter_value('hi_nope', 'k')$$, '42704',
                 'tally.counter_value: unknown counter "hi_nope"', 'counter_value: unknown counter');
SELECT throws_ok($$SELECT * FROM tally.counter_series('hi_nope', 'k', 'day', now() - interval '1 day', now())$$,
                 '42704', 'tally.counter_series: unknown counter "hi_nope"', 'counter_series: unknown counter');
SELECT throws_ok($$SELECT * FROM tally.top_keys('hi_nope', 'all', now())$$, '42704',
                 'tally.top_keys: unknown counter "hi_nope"', 'top_keys: unknown counter');
SELECT throws_ok($$SELECT tally.increment_counters('{hi,hi_nope}', '{k,k}', '{1,1}')$$, '42704',
                 'tally.increment_counters: element 2: unknown counter "hi_nope"', 'increment_counters: unknown counter');
SELECT throws_ok($$SELECT tally.drop_counter('hi_nope')$$, '42704',
                 'tally.drop_counter: unknown counter "hi_nope"', 'drop_counter: unknown counter');
SELECT throws_ok($$SELECT tally.set_retention('hi_nope', 'day', interval '30 days')$$, '42704',
                 'tally.set_retention: unknown counter "hi_nope"', 'set_retention: unknown counter');
SELECT throws_ok($$SELECT tally.reset_retention('hi_nope', 'day')$$, '42704',
                 'tally.reset_retention: unknown counter "hi_nope"', 'reset_retention: unknown counter');
SELECT throws_ok($$SELECT tally.set_source('hi_nope', 'SELECT count(*) FROM pg_class WHERE relname = $1')$$, '42704',
                 'tally.set_source: unknown counter "hi_nope"', 'set_source: unknown counter');
SELECT throws_ok($$SELECT * FROM tally.check_drift('hi_nope')$$, '42704',
                 'tally.check_drift: unknown counter "hi_nope"', 'check_drift: unknown counter');
SELECT throws_ok($$SELECT * FROM tally.reconcile('hi_nope', '{k}')$$, '42704',
                 'tally.reconcile: unknown counter "hi_nope"', 'reconcile: unknown counter');

-- 4. Unknown granularity
SELECT throws_ok($$SELECT * FROM tally.counter_series('hi', 'k', 'fortnight', now() - interval '1 day', now())$$,
                 '22023', 'tally.counter_series: unknown granularity "fortnight"', 'counter_series: unknown granularity');
SELECT throws_ok($$SELECT * FROM tally.counter_series('hi', 'k', NULL, now() - interval '1 day', now())$$,
                 '22004', 'tally.counter_series: granularity must not be NULL', 'counter_series: NULL granularity');
SELECT throws_ok($$SELECT * FROM tally.counter_series('hi', 'k', 'all', now() - interval '1 day', now())$$,
                 '22023', 'tally.counter_series: granularity "all" has no buckets', 'counter_series: "all" has no buckets');
SELECT throws_ok($$SELECT * FROM tally.counter_series('hi_total', 'k', 'day', now() - interval '1 day', now())$$,
                 '22023', 'tally.counter_series: counter "hi_total" does not keep day buckets',
                 'counter_series: a granularity the counter does not keep');
SELECT throws_ok($$SELECT * FROM tally.top_keys('hi', 'fortnight', now())$$, '22023',
                 'tally.top_keys: unknown granularity "fortnight"', 'top_keys: unknown granularity');
SELECT throws_ok($$SELECT * FROM tally.top_keys('hi', 'Day', now())$$, '22023',
                 'tally.top_keys: unknown granularity "Day"', 'top_keys: granularities are case-sensitive');
SELECT throws_ok($$SELECT tally.set_retention('hi', 'fortnight', interval '30 days')$$, '22023',
                 'tally.set_retention: unknown granularity "fortnight"', 'set_retention: unknown granularity');
SELECT throws_ok($$SELECT tally.set_retention(NULL, 'all', interval '30 days')$$, '22023',
                 'tally.set_retention: unknown granularity "all"', 'set_retention: "all" (the total) has no retention');
SELECT throws_ok($$SELECT tally.reset_retention('hi', 'fortnight')$$, '22023',
                 'tally.reset_retention: unknown granularity "fortnight"', 'reset_retention: unknown granularity');
SELECT throws_ok($$SELECT tally.create_counter('hi_new', '{day,fortnight}')$$, '22023',
                 'tally.create_counter: unknown granularity "fortnight" for counter "hi_new"',
                 'create_counter: unknown granularity');
SELECT throws_ok($$SELECT tally.create_counter('hi_new', '{day,"day; DROP TABLE tally.counters"}')$$, '22023',
                 'tally.create_counter: unknown granularity "day; DROP TABLE tally.counters" for counter "hi_new"',
                 'create_counter: a granularity carrying SQL is just unknown');
SELECT throws_ok($$SELECT tally.create_counter('hi_new', ARRAY['day', NULL])$$, '22004',
                 'tally.create_counter: granularities of "hi_new" must not be NULL or hold NULL',
                 'create_counter: a NULL granularity');

SELECT results_eq('TABLE hi_state ORDER BY t', 'TABLE hi_before ORDER BY t',
                  'sections 1-4: no refusal changed anything');

-- 5. Keys: the limit is 512 bytes, not characters
SELECT throws_ok($$SELECT tally.increment_counter('hi', repeat('x', 513))$$, '22001',
                 'tally.increment_counter: key of 513 bytes is over the 512-byte limit', 'a 513-byte ASCII key');
SELECT throws_ok($$SELECT tally.increment_counter('hi', repeat('é', 256) || 'x')$$, '22001',
                 'tally.increment_counter: key of 513 bytes is over the 512-byte limit',
                 'a key of 257 characters but 513 bytes (two-byte é)');
SELECT throws_ok($$SELECT tally.increment_counter('hi', repeat('😀', 129))$$, '22001',
                 'tally.increment_counter: key of 516 bytes is over the 512-byte limit',
                 'a key of 129 four-byte characters (516 bytes)');
SELECT throws_ok($$SELECT tally.counter_value('hi', repeat('é', 257))$$, '22001',
                 'tally.counter_value: key of 514 bytes is over the 512-byte limit', 'counter_value: oversized key');
SELECT throws_ok($$SELECT * FROM tally.counter_series('hi', repeat('x', 100000), 'day', now() - interval '1 day', now())$$,
                 '22001', 'tally.counter_series: key of 100000 bytes is over the 512-byte limit',
                 'counter_series: a huge key');
SELECT throws_ok($$SELECT tally.increment_counters('{hi,hi}', ARRAY['k', repeat('ß', 257)], '{1,1}')$$, '22001',
                 'tally.increment_counters: element 2: key of 514 bytes is over the 512-byte limit',
                 'increment_counters: an oversized key element');
SELECT results_eq('TABLE hi_state ORDER BY t', 'TABLE hi_before ORDER BY t',
                  'oversized keys: nothing changed');

SELECT is(tally.increment_counter('hi', repeat('x', 512), 2), true, 'a 512-byte ASCII key is fine');
SELECT is(tally.increment_counter('hi', repeat('é', 256), 3), true, 'a key of 256 two-byte characters (512 bytes) is fine');
SELECT is(tally.increment_counter('hi', repeat('😀', 128), 4), true,
          'a key of 128 four-byte characters (512 bytes) is fine');
SELECT results_eq(
    $$SELECT tally.counter_value('hi', repeat('x', 512)), tally.counter_value('hi', repeat('é', 256)),
             tally.counter_value('hi', repeat('😀', 128))$$,
    $$VALUES (2::bigint, 3::bigint, 4::bigint)$$,
    '512-byte keys are counted and read back'
);
TRUNCATE hi_before;
INSERT INTO hi_before SELECT * FROM hi_state;

-- 6. Hostile counter names and keys: refused or treated as data, never run
SELECT throws_ok($$SELECT tally.create_counter($n$x'); DROP TABLE tally.counters; --$n$)$$, '42602',
                 $m$tally.create_counter: invalid counter name "x'); DROP TABLE tally.counters; --"$m$,
                 'create_counter: an SQL-injection name is refused as an invalid name');
SELECT throws_ok($$SELECT tally.create_counter('hi"; DROP SCHEMA tally CASCADE; --')$$, '42602',
                 'tally.create_counter: invalid counter name "hi"; DROP SCHEMA tally CASCADE; --"',
                 'create_counter: a double-quote injection is refused');
SELECT throws_ok($$SELECT tally.create_counter('o''reilly')$$, '42602',
                 $m$tally.create_counter: invalid counter name "o'reilly"$m$, 'create_counter: a quote');
SELECT throws_ok($$SELECT tally.create_counter('a;b')$$, '42602',
                 'tally.create_counter: invalid counter name "a;b"', 'create_counter: a semicolon');
SELECT throws_ok($$SELECT tally.create_counter('zählung')$$, '42602',
                 'tally.create_counter: invalid counter name "zählung"', 'create_counter: a non-ASCII letter');
SELECT throws_ok($$SELECT tally.create_counter('Views')$$, '42602',
                 'tally.create_counter: invalid counter name "Views"', 'create_counter: an uppercase letter');
SELECT throws_ok($$SELECT tally.create_counter('1views')$$, '42602',
                 'tally.create_counter: invalid counter name "1views"', 'create_counter: a leading digit');
SELECT throws_ok($$SELECT tally.create_counter(E'views\n')$$, '42602',
                 E'tally.create_counter: invalid counter name "views\n"', 'create_counter: a trailing newline');
SELECT throws_ok($$SELECT tally.create_counter(repeat('a', 64))$$, '42602',
                 format('tally.create_counter: invalid counter name "%s"', repeat('a', 64)),
                 'create_counter: a name of 64 characters');
SELECT throws_ok($$SELECT tally.create_counter('hi')$$, '42710',
                 'tally.create_counter: counter "hi" already exists', 'create_counter: a duplicate name');
SELECT throws_ok($$SELECT tally.increment_counter($n$x'); DROP TABLE tally.counters; --$n$, 'k')$$, '42704',
                 $m$tally.increment_counter: unknown counter "x'); DROP TABLE tally.counters; --"$m$,
                 'increment_counter: an SQL-injection counter name is an unknown counter');
SELECT throws_ok($$SELECT tally.counter_value($n$x'); DROP TABLE tally.counters; --$n$, 'k')$$, '42704',
                 $m$tally.counter_value: unknown counter "x'); DROP TABLE tally.counters; --"$m$,
                 'counter_value: an SQL-injection counter name is an unknown counter');
SELECT throws_ok($$SELECT * FROM tally.counter_series('hi"; SELECT pg_sleep(10); --', 'k', 'day', now(), now())$$,
                 '42704', 'tally.counter_series: unknown counter "hi"; SELECT pg_sleep(10); --"',
                 'counter_series: an injection attempt is an unknown counter');
SELECT throws_ok($$SELECT tally.increment_counters(ARRAY['hi', 'zählung; --'], '{k,k}', '{1,1}')$$, '42704',
                 'tally.increment_counters: element 2: unknown counter "zählung; --"',
                 'increment_counters: a unicode, semicolon counter name is an unknown counter');
SELECT throws_ok($$SELECT tally.drop_counter($n$hi'; DROP TABLE tally.counters; --$n$)$$, '42704',
                 $m$tally.drop_counter: unknown counter "hi'; DROP TABLE tally.counters; --"$m$,
                 'drop_counter: an injection attempt is an unknown counter');
SELECT results_eq('TABLE hi_state ORDER BY t', 'TABLE hi_before ORDER BY t',
                  'hostile names: nothing created, dropped or written');
SELECT has_table('tally', 'counters', 'tally.counters is still there');

SELECT lives_ok($$SELECT tally.create_counter('hi.app:v1-x_2')$$, 'create_counter: letters, digits, _ . : - are fine');
SELECT lives_ok($$SELECT tally.create_counter('h' || repeat('i', 62))$$, 'create_counter: a name of 63 characters');
SELECT is(tally.increment_counter('hi', $k$x'); DROP TABLE tally.counters; --$k$, 5), true,
          'a key carrying SQL is only data');
SELECT is(tally.increment_counter('hi', 'naïve "quoted"; 🎉 Ω', 6), true, 'a key with quotes, a semicolon, emoji');
SELECT results_eq(
    $$SELECT tally.counter_value('hi', $k$x'); DROP TABLE tally.counters; --$k$),
             tally.counter_value('hi', 'naïve "quoted"; 🎉 Ω')$$,
    $$VALUES (5::bigint, 6::bigint)$$,
    'hostile keys are counted as they are'
);
SELECT results_eq(
    $$SELECT key, value FROM tally.top_keys('hi', 'all', NULL, 10000) WHERE key LIKE '%DROP%' OR key LIKE 'naïve%'$$,
    $$VALUES ('naïve "quoted"; 🎉 Ω'::text, 6::bigint), ($k$x'); DROP TABLE tally.counters; --$k$, 5::bigint)$$,
    'and listed as they are'
);
TRUNCATE hi_before;
INSERT INTO hi_before SELECT * FROM hi_state;

-- 7. Timestamps: finite, from 1970-01-01, at most one day ahead of now()
SELECT throws_ok($$SELECT tally.increment_counter('hi', 'k', 1, 'infinity')$$, '22008',
                 'tally.increment_counter: timestamp infinity is out of range', 'increment_counter: infinity');
SELECT throws_ok($$SELECT tally.increment_counter('hi', 'k', 1, '-infinity')$$, '22008',
                 'tally.increment_counter: timestamp -infinity is out of range', 'increment_counter: -infinity');
SELECT throws_like($$SELECT tally.increment_counter('hi', 'k', 1, '1969-12-31 23:59:59.999999+00')$$,
                   'tally.increment_counter: timestamp % is out of range', 'increment_counter: just before 1970');
SELECT throws_ok($$SELECT tally.increment_counter('hi', 'k', 1, '1969-12-31 23:59:59.999999+00')$$, '22008', NULL,
                 'increment_counter: before 1970 is datetime_field_overflow');
SELECT throws_ok($$SELECT tally.increment_counter('hi', 'k', 1, '4713-01-01 00:00:00+00 BC')$$, '22008', NULL,
                 'increment_counter: the earliest timestamp');
SELECT throws_ok($$SELECT tally.increment_counter('hi', 'k', 1, now() + interval '1 day 1 microsecond')$$, '22008',
                 NULL, 'increment_counter: more than a day ahead');
SELECT throws_ok($$SELECT tally.increment_counter('hi', 'k', 1, '294276-12-31 23:59:59+00')$$, '22008', NULL,
                 'increment_counter: the latest timestamp');
SELECT throws_ok($$SELECT tally.increment_counter('hi', 'k', 1, NULL)$$, '22004',
                 'tally.increment_counter: timestamp must not be NULL', 'increment_counter: a NULL timestamp');
SELECT throws_ok($$SELECT tally.increment_counters('{hi,hi}', '{k,k}', '{1,1}', ARRAY[now(), '-infinity'])$$, '22008',
                 'tally.increment_counters: element 2: timestamp -infinity is out of range',
                 'increment_counters: a -infinity element');
SELECT throws_ok($$SELECT tally.increment_counters('{hi,hi}', '{k,k}', '{1,1}', ARRAY[now(), NULL])$$, '22004',
                 'tally.increment_counters: element 2: timestamp must not be NULL', 'increment_counters: a NULL element');
SELECT throws_like(
    $$SELECT tally.increment_counters('{hi}', '{k}', '{1}', ARRAY[now() + interval '2 days'])$$,
    'tally.increment_counters: element 1: timestamp % is out of range', 'increment_counters: a far-future element'
);
SELECT results_eq('TABLE hi_state ORDER BY t', 'TABLE hi_before ORDER BY t', 'bad timestamps: nothing changed');
SELECT is(tally.increment_counter('hi_durable', 'edge', 1, '1970-01-01 00:00:00+00'), true, '1970-01-01 is fine');
SELECT is(tally.increment_counter('hi_durable', 'edge', 2, now() + interval '1 day'), true,
          'exactly one day ahead is fine');
SELECT is(tally.counter_value('hi_durable', 'edge'), 3::bigint, 'both are counted');
TRUNCATE hi_before;
INSERT INTO hi_before SELECT * FROM hi_state;

-- 8. Time ranges
SELECT throws_like(
    $$SELECT * FROM tally.counter_series('hi', 'seed', 'hour', now(), now() - interval '1 second')$$,
    'tally.counter_series: p_from % is after p_to %', 'counter_series: p_from > p_to is refused...'
);
SELECT throws_ok($$SELECT * FROM tally.counter_series('hi', 'seed', 'hour', now(), now() - interval '1 second')$$,
                 '22023', NULL, '... with invalid_parameter_value');
SELECT throws_ok($$SELECT * FROM tally.counter_series('hi', 'seed', 'hour', 'infinity', '-infinity')$$, '22023', NULL,
                 'counter_series: infinity > -infinity is refused');
SELECT throws_ok($$SELECT * FROM tally.counter_series('hi', 'seed', 'hour', NULL, now())$$, '22004',
                 'tally.counter_series: p_from and p_to must not be NULL', 'counter_series: a NULL p_from');
SELECT throws_ok($$SELECT * FROM tally.counter_series('hi', 'seed', 'hour', now(), NULL)$$, '22004',
                 'tally.counter_series: p_from and p_to must not be NULL', 'counter_series: a NULL p_to');
SELECT is_empty($$SELECT * FROM tally.counter_series('hi', 'seed', 'hour', now(), now())$$,
                'counter_series: p_from = p_to is an empty range');
SELECT results_eq(
    $$SELECT value FROM tally.counter_series('hi', 'seed', 'hour', '-infinity', 'infinity')$$,
    $$VALUES (7::bigint)$$,
    'counter_series: (-infinity, infinity) is the whole history'
);
SELECT throws_ok($$SELECT * FROM tally.top_keys('hi', 'day', 'infinity')$$, '22023',
                 'tally.top_keys: bucket infinity is not a finite timestamp', 'top_keys: an infinite bucket');
SELECT throws_ok($$SELECT * FROM tally.top_keys('hi', 'day', NULL)$$, '22023',
                 'tally.top_keys: bucket NULL is not a finite timestamp', 'top_keys: a NULL bucket');
SELECT throws_ok($$SELECT * FROM tally.top_keys('hi', 'all', now(), 0)$$, '22023',
                 'tally.top_keys: limit 0 is out of range', 'top_keys: limit 0');
SELECT throws_ok($$SELECT * FROM tally.top_keys('hi', 'all', now(), 10001)$$, '22023',
                 'tally.top_keys: limit 10001 is out of range', 'top_keys: limit 10001');

-- 9. Batches: arrays
SELECT throws_ok($$SELECT tally.increment_counters(NULL, '{k}', '{1}')$$, '22004',
                 'tally.increment_counters: p_counters, p_keys and p_deltas must not be NULL', 'NULL p_counters');
SELECT throws_ok($$SELECT tally.increment_counters('{hi}', NULL, '{1}')$$, '22004',
                 'tally.increment_counters: p_counters, p_keys and p_deltas must not be NULL', 'NULL p_keys');
SELECT throws_ok($$SELECT tally.increment_counters('{hi}', '{k}', NULL)$$, '22004',
                 'tally.increment_counters: p_counters, p_keys and p_deltas must not be NULL', 'NULL p_deltas');
SELECT throws_ok(
    $$SELECT tally.increment_counters('{{hi,hi},{hi,hi}}', '{k1,k2,k3,k4}', '{1,1,1,1}')$$, '2202E',
    'tally.increment_counters: arrays must be one-dimensional', 'a two-dimensional array is refused'
);
SELECT throws_ok(
    $$SELECT tally.set_retention('hi', NULL, '30 days')$$, '22004', 'tally.set_retention: granularity must not be NULL',
    'set_retention: NULL granularity'
);
SELECT throws_ok(
    $$SELECT * FROM tally.counter_series('hi_total', 'k', 'day', now() - interval '1 day', now())$$, '22023',
    'tally.counter_series: counter "hi_total" does not keep day buckets',
    'counter_series: a granularity a total-only counter does not keep'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{hi,hi}', '{k}', '{1,1}')$$, '2202E',
    'tally.increment_counters: arrays differ in length (counters 2, keys 1, deltas 2, ats NULL, event ids NULL)',
    'p_keys shorter'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{hi}', '{k}', '{1,1}')$$, '2202E',
    'tally.increment_counters: arrays differ in length (counters 1, keys 1, deltas 2, ats NULL, event ids NULL)',
    'p_deltas longer'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{hi,hi}', '{k,k}', '{1,1}', ARRAY[now()])$$, '2202E',
    'tally.increment_counters: arrays differ in length (counters 2, keys 2, deltas 2, ats 1, event ids NULL)',
    'p_ats shorter'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{hi}', '{k}', '{1}', NULL, '{}')$$, '2202E',
    'tally.increment_counters: arrays differ in length (counters 1, keys 1, deltas 1, ats NULL, event ids 0)',
    'p_event_ids empty, not NULL'
);
SELECT throws_ok($$SELECT tally.increment_counters('{hi,hi}', '{k,k}', ARRAY[1, NULL]::bigint[])$$, '22004',
                 'tally.increment_counters: element 2: delta must not be NULL', 'a NULL delta element');
SELECT throws_ok($$SELECT tally.increment_counters('{hi,hi}', '{k,k}', '{1,1}', NULL, ARRAY['e-1', NULL])$$, '22004',
                 'tally.increment_counters: element 2: event id must not be NULL', 'a NULL event id element');
SELECT throws_ok($$SELECT tally.increment_counters('{hi,hi}', '{k,k}', '{1,1}', NULL, '{e-1,""}')$$, '22023',
                 'tally.increment_counters: element 2: event id must not be empty', 'an empty event id element');
SELECT throws_ok(
    $$SELECT tally.increment_counters('{hi,hi}', '{k,k}', '{1,1}', NULL, ARRAY['e-1', repeat('é', 129)])$$, '22001',
    'tally.increment_counters: element 2: event id of 258 bytes is over the 256-byte limit',
    'an oversized event id element'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{hi,hi,hi_nope}', ARRAY['k', NULL, 'k'], ARRAY[1, 1, NULL]::bigint[])$$, '22004',
    'tally.increment_counters: element 2: key must not be NULL or empty', 'of several bad elements the first is named'
);

-- 10. Oversized batches: the limit is 100000 increments, checked first
SELECT throws_ok(
    $$SELECT tally.increment_counters(array_fill('hi'::text, ARRAY[100001]), array_fill('k'::text, ARRAY[100001]),
                                      array_fill(1::bigint, ARRAY[100001]))$$,
    '54000', 'tally.increment_counters: batch of 100001 increments is over the limit of 100000',
    'a batch of 100001 is refused with program_limit_exceeded'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters(array_fill(NULL::text, ARRAY[200000]), array_fill(NULL::text, ARRAY[200000]),
                                      array_fill(NULL::bigint, ARRAY[200000]))$$,
    '54000', 'tally.increment_counters: batch of 200000 increments is over the limit of 100000',
    'an oversized batch of NULLs is refused for its size before any element is read'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters(array_fill('hi'::text, ARRAY[99999]) || 'hi_nope'::text,
                                      array_fill('k'::text, ARRAY[100000]), array_fill(1::bigint, ARRAY[100000]))$$,
    '42704', 'tally.increment_counters: element 100000: unknown counter "hi_nope"',
    'a batch of exactly 100000 is within the limit (only its bad last element is refused)'
);

-- 11. Deltas and event ids
SELECT throws_ok($$SELECT tally.increment_counter('hi', 'k', NULL)$$, '22004',
                 'tally.increment_counter: delta for counter "hi" must not be NULL', 'increment_counter: a NULL delta');
SELECT throws_ok($$SELECT tally.increment_counter('hi', 'k', 1, now(), '')$$, '22023',
                 'tally.increment_counter: event id must not be empty', 'increment_counter: an empty event id');
SELECT throws_ok($$SELECT tally.increment_counter('hi', 'k', 1, now(), repeat('x', 257))$$, '22001',
                 'tally.increment_counter: event id of 257 bytes is over the 256-byte limit',
                 'increment_counter: an oversized event id');
SELECT results_eq('TABLE hi_state ORDER BY t', 'TABLE hi_before ORDER BY t',
                  'sections 8-11: no refusal changed anything');

SELECT is(tally.increment_counter('hi', 'ev', 1, now(), $e$e'); DROP TABLE tally.event_ids; --$e$), true,
          'an event id carrying SQL is only data');
CREATE TEMP TABLE hi_after_event AS SELECT * FROM hi_state;
SELECT is(tally.increment_counter('hi', 'ev', 1, now(), $e$e'); DROP TABLE tally.event_ids; --$e$), false,
          'and its replay is recognised');
SELECT is(tally.increment_counters('{hi,hi}', '{ev,ev}', '{1,1}', NULL, $a${"e'); DROP TABLE tally.event_ids; --","e'); DROP TABLE tally.event_ids; --"}$a$),
          0::bigint, 'also in a batch');
SELECT results_eq('TABLE hi_state ORDER BY t', 'TABLE hi_after_event ORDER BY t', 'a replay changes nothing');
SELECT has_table('tally', 'event_ids', 'tally.event_ids is still there');

-- 12. bigint overflow: accepted when written (each delta is a valid bigint),
-- set aside at fold time (tally.quarantined, tally.health) so the rest folds.
SELECT tally.create_counter('hi_ov');
SELECT is(
    tally.increment_counters('{hi_ov,hi_ov,hi_ov}', '{poison,poison,fine}',
                             '{9223372036854775807,9223372036854775807,5}'),
    3::bigint,
    'two bigint-max deltas for one key in one batch are accepted when written'
);
SELECT is(tally.increment_counter('hi_ov', 'low', -9223372036854775808), true, 'the bigint minimum is a valid delta');
SELECT throws_ok($$SELECT tally.counter_value('hi_ov', 'poison')$$, '22003',
                 'tally.counter_value: the value of key "poison" of counter "hi_ov" (18446744073709551614) is out of '
                 'the bigint range',
                 'counter_value over an overflowing pending sum fails cleanly (22003)');
SELECT throws_like($$SELECT * FROM tally.counter_series('hi_ov', 'poison', 'day', '-infinity', 'infinity')$$,
                   'tally.counter_series:%', 'counter_series over an overflowing pending sum fails cleanly');
SELECT results_eq($$SELECT key, value FROM tally.top_keys('hi_ov', 'all', NULL)$$,
                  $$VALUES ('fine'::text, 5::bigint), ('low', -9223372036854775808)$$,
                  'top_keys over a counter with one overflowing key returns the others (the poison key is left '
                  'out with a WARNING): one key''s poison never fails a read of the others');
SELECT lives_ok($$SELECT tally._fold()$$, 'the fold is not wedged by them');
SELECT results_eq(
    $$SELECT counter, key, deltas, delta_sum FROM tally.quarantined WHERE counter = 'hi_ov'$$,
    $$VALUES ('hi_ov'::text, 'poison'::text, 2::bigint, 18446744073709551614::numeric)$$,
    'they are set aside, visible in tally.quarantined'
);
SELECT is((SELECT status FROM tally.health WHERE "check" = 'quarantine'), 'warn', 'and in tally.health');
SELECT results_eq(
    $$SELECT tally.counter_value('hi_ov', 'poison'), tally.counter_value('hi_ov', 'fine'),
             tally.counter_value('hi_ov', 'low'), tally.counter_value('hi', 'seed')$$,
    $$VALUES (0::bigint, 5::bigint, (-9223372036854775808)::bigint, 7::bigint)$$,
    'the poison counts nowhere; everything else folded exactly'
);
SELECT is_empty($$SELECT FROM tally.delta$$, 'nothing is left pending');

SELECT * FROM finish();
ROLLBACK;
