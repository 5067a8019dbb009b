-- tally.counter_values: a page of keys in one call, one row per key asked
-- for in the order given, each equal to tally.counter_value (folded plus
-- pending, before and after a fold); refusals.
BEGIN;
SELECT plan(17);

SELECT tally.create_counter('cvs_c');
SELECT tally.create_counter('cvs_d', '{day}', true);
SELECT tally.increment_counters(
    '{cvs_c,cvs_c,cvs_c,cvs_c,cvs_d}', '{a,b,a,c,a}', '{5,7,-2,100,1000}',
    '{2026-10-01 10:00+00,2026-10-01 10:00+00,2026-10-02 10:00+00,2026-10-03 10:00+00,2026-10-01 10:00+00}');

SELECT results_eq(
    $$SELECT key, value FROM tally.counter_values('cvs_c', '{c,zz,a,b,a}')$$,
    $$VALUES ('c', 100::bigint), ('zz', 0::bigint), ('a', 3::bigint), ('b', 7::bigint), ('a', 3::bigint)$$,
    'pending: one row per key asked for, in the order given, 0 for a key never incremented, a repeated key twice'
);
SELECT results_eq(
    $$SELECT key, value FROM tally.counter_values('cvs_d', '{a,b}')$$,
    $$VALUES ('a', 1000::bigint), ('b', 0::bigint)$$,
    'the same key of another counter is independent'
);
SELECT is_empty($$SELECT * FROM tally.counter_values('cvs_c', '{}')$$, 'no keys, no rows');

CREATE TEMP TABLE cvs_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT tally.increment_counters('{cvs_c,cvs_c}', '{a,new}', '{10,1}');
SELECT results_eq(
    $$SELECT key, value FROM tally.counter_values('cvs_c', '{a,b,c,new,zz}')$$,
    $$VALUES ('a', 13::bigint), ('b', 7::bigint), ('c', 100::bigint), ('new', 1::bigint), ('zz', 0::bigint)$$,
    'folded plus pending'
);
SELECT results_eq(
    $$SELECT value FROM tally.counter_values('cvs_c', '{a,b,c,new,zz}')$$,
    $$SELECT tally.counter_value('cvs_c', k) FROM unnest('{a,b,c,new,zz}'::text[]) WITH ORDINALITY AS u (k, o) ORDER BY o$$,
    'each value equals counter_value of its key'
);
SELECT is((SELECT count(*) FROM tally.counter_values('cvs_c', ARRAY(SELECT 'k' || i FROM generate_series(1, 10000) AS i))),
          10000::bigint, '10,000 keys are within the limit');

-- Refusals
SELECT throws_ok($$SELECT * FROM tally.counter_values('cvs_nope', '{a}')$$, '42704',
    'tally.counter_values: unknown counter "cvs_nope"', 'an unknown counter is refused');
SELECT throws_ok($$SELECT * FROM tally.counter_values(NULL, '{a}')$$, '22004',
    'tally.counter_values: counter name must not be NULL or empty', 'a NULL counter is refused');
SELECT throws_ok($$SELECT * FROM tally.counter_values('cvs_c', NULL)$$, '22004',
    'tally.counter_values: keys must not be NULL', 'NULL keys are refused');
SELECT throws_ok($$SELECT * FROM tally.counter_values('cvs_c', '{a,NULL}')$$, '22004',
    'tally.counter_values: element 2: key must not be NULL or empty', 'a NULL key is refused naming its element');
SELECT throws_ok($$SELECT * FROM tally.counter_values('cvs_c', ARRAY['a', '', 'b'])$$, '22004',
    'tally.counter_values: element 2: key must not be NULL or empty', 'an empty key is refused naming its element');
SELECT throws_ok($$SELECT * FROM tally.counter_values('cvs_c', ARRAY['a', 'b', repeat('x', 513)])$$, '22001',
    'tally.counter_values: element 3: key of 513 bytes is over the 512-byte limit',
    'an oversized key is refused naming its element');
SELECT throws_ok($$SELECT * FROM tally.counter_values('cvs_c', ('[0:1]={a,' || repeat('x', 600) || '}')::text[])$$,
    '22001', 'tally.counter_values: element 2: key of 600 bytes is over the 512-byte limit',
    'an array not numbered from 1: the element is named by its place in the order given');
SELECT throws_ok(
    $$SELECT * FROM tally.counter_values('cvs_c', ARRAY(SELECT 'k' || i FROM generate_series(1, 10001) AS i))$$,
    '54000', 'tally.counter_values: 10001 keys are over the limit of 10000 a call', 'over 10,000 keys are refused');

-- A value that overflows bigint fails the call naming its key.
SELECT tally.increment_counters('{cvs_c,cvs_c}', '{big,big}', '{9223372036854775807,1}');
SELECT throws_like($$SELECT * FROM tally.counter_values('cvs_c', '{a,big}')$$,
    '%key "big"%', 'a value out of bigint range fails the read naming the key');

SELECT ok(has_function_privilege('tally_reader', 'tally.counter_values(text, text[])', 'EXECUTE'), 'tally_reader may call it');
SELECT ok(NOT has_function_privilege('public', 'tally.counter_values(text, text[])', 'EXECUTE'), 'PUBLIC may not');

SELECT * FROM finish();
ROLLBACK;
