-- tally.increment_counters: a batch applied all-or-nothing; returns the rows
-- applied; p_ats NULL means now(); every refusal names the bad element and
-- writes nothing.
BEGIN;
SELECT plan(33);

SELECT tally.create_counter('bc_fast');
SELECT tally.create_counter('bc_durable', '{day}', true);

-- Behaviour
SELECT is(
    tally.increment_counters('{bc_fast,bc_fast,bc_durable,bc_fast}', '{x,y,x,x}', '{1,2,3,-5}'),
    4::bigint,
    'a batch returns the number of increments applied'
);
SELECT results_eq(
    $$SELECT tally.counter_value('bc_fast', 'x'), tally.counter_value('bc_fast', 'y'),
             tally.counter_value('bc_durable', 'x')$$,
    $$VALUES (-4::bigint, 2::bigint, 3::bigint)$$,
    'every element is counted (negative deltas too), readable before any fold'
);
SELECT is_empty(
    $$SELECT FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id
      WHERE c.name IN ('bc_fast', 'bc_durable') AND d.at <> now()$$,
    'with p_ats NULL every increment is at now()'
);
SELECT results_eq(
    $$SELECT c.name, cl.relpersistence::text, count(*)
      FROM tally.delta AS d
      JOIN tally.counters AS c ON c.id = d.counter_id
      JOIN pg_catalog.pg_class AS cl ON cl.oid = d.tableoid
      WHERE c.name IN ('bc_fast', 'bc_durable')
      GROUP BY 1, 2 ORDER BY 1$$,
    $$VALUES ('bc_durable'::text, 'p'::text, 1::bigint), ('bc_fast', 'u', 3::bigint)$$,
    'durable elements land in a logged shard, fast ones in an UNLOGGED shard'
);
SELECT results_eq(
    $$SELECT DISTINCT c.name, d.tableoid FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id
      WHERE c.name IN ('bc_fast', 'bc_durable') ORDER BY 1$$,
    $$SELECT 'bc_durable'::text, format('tally.delta_g%s_durable_%s', w.gen, pg_backend_pid() % 3)::regclass::oid
      FROM tally.write_gen AS w
      UNION ALL
      SELECT 'bc_fast', format('tally.delta_g%s_fast_%s', w.gen, pg_backend_pid() % 3)::regclass::oid
      FROM tally.write_gen AS w$$,
    'they are this backend''s shards (pid % 3) of the active generation (tally.write_gen.gen)'
);
SELECT is(
    tally.increment_counters(
        '{bc_fast,bc_fast}', '{t1,t2}', '{10,20}',
        ARRAY['2024-01-03 10:00+00', '1970-01-01 00:00+00']::timestamptz[]),
    2::bigint,
    'a batch with explicit timestamps is applied'
);
SELECT results_eq(
    $$SELECT d.key, d.delta, d.at FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id
      WHERE c.name = 'bc_fast' AND d.key IN ('t1', 't2') ORDER BY d.key$$,
    $$VALUES ('t1'::text, 10::bigint, '2024-01-03 10:00+00'::timestamptz),
             ('t2', 20::bigint, '1970-01-01 00:00+00'::timestamptz)$$,
    'element i is (p_counters[i], p_keys[i], p_deltas[i], p_ats[i])'
);
SELECT is(tally.increment_counters('{}', '{}', '{}'), 0::bigint, 'empty arrays return 0');
SELECT is(tally.increment_counters('{}', '{}', '{}', '{}'), 0::bigint, 'empty arrays with empty p_ats return 0');

-- Refusals: each is all-or-nothing.
CREATE TEMP TABLE bc_before ON COMMIT DROP AS SELECT count(*) AS n, coalesce(sum(delta), 0) AS s FROM tally.delta;

SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast,bc_nope,bc_fast}', '{atomic,atomic,atomic}', '{1,1,1}')$$,
    '42704', 'tally.increment_counters: element 2: unknown counter "bc_nope"',
    'an unknown counter in element 2 is refused with undefined_object naming the element'
);
SELECT is(
    tally.counter_value('bc_fast', 'atomic'), 0::bigint,
    'the good elements of a refused batch were not written'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters(ARRAY['bc_fast', NULL], '{k,k}', '{1,1}')$$,
    '22004', 'tally.increment_counters: element 2: counter name must not be NULL or empty',
    'a NULL counter element is refused with null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast,bc_fast,bc_fast}', ARRAY['k', 'k', NULL], '{1,1,1}')$$,
    '22004', 'tally.increment_counters: element 3: key must not be NULL or empty',
    'a NULL key element is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast}', '{""}', '{1}')$$,
    '22004', 'tally.increment_counters: element 1: key must not be NULL or empty',
    'an empty key element is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast,bc_fast}', ARRAY['k', repeat('x', 513)], '{1,1}')$$,
    '22001', 'tally.increment_counters: element 2: key of 513 bytes is over the 512-byte limit',
    'a key element over 512 bytes is refused with string_data_right_truncation'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast,bc_fast}', '{k,k}', ARRAY[1, NULL]::bigint[])$$,
    '22004', 'tally.increment_counters: element 2: delta must not be NULL',
    'a NULL delta element is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast,bc_fast}', '{k,k}', '{1,1}', ARRAY[now(), NULL])$$,
    '22004', 'tally.increment_counters: element 2: timestamp must not be NULL',
    'a NULL timestamp element is refused with null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast}', '{k}', '{1}', '{infinity}')$$,
    '22008', 'tally.increment_counters: element 1: timestamp infinity is out of range',
    'an infinite timestamp element is refused with datetime_field_overflow'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast,bc_fast}', '{k,k}', '{1,1}',
                                      ARRAY[now(), '1969-12-31 23:59:59+00'])$$,
    '22008', NULL,
    'a pre-1970 timestamp element is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast}', '{k}', '{1}', ARRAY[now() + interval '25 hours'])$$,
    '22008', NULL,
    'a timestamp element more than a day ahead is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast,bc_fast,bc_nope}', ARRAY['k', NULL, 'k'], '{1,1,1}')$$,
    '22004', 'tally.increment_counters: element 2: key must not be NULL or empty',
    'with several bad elements the first one is reported'
);

-- Shape of the arrays
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast,bc_fast}', '{k}', '{1,1}')$$,
    '2202E', 'tally.increment_counters: arrays differ in length (counters 2, keys 1, deltas 2, ats NULL, event ids NULL)',
    'p_keys shorter than p_counters is refused with array_subscript_error'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast}', '{k}', '{1,1}')$$, '2202E', NULL,
    'p_deltas longer than p_counters is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast,bc_fast}', '{k,k}', '{1,1}', ARRAY[now()])$$, '2202E', NULL,
    'p_ats of another length is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bc_fast}', '{k}', '{1}', '{}')$$, '2202E', NULL,
    'an empty (not NULL) p_ats with a non-empty batch is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters(NULL, '{k}', '{1}')$$,
    '22004', 'tally.increment_counters: p_counters, p_keys and p_deltas must not be NULL',
    'a NULL p_counters is refused with null_value_not_allowed'
);
SELECT throws_ok($$SELECT tally.increment_counters('{bc_fast}', NULL, '{1}')$$, '22004', NULL, 'a NULL p_keys is refused');
SELECT throws_ok($$SELECT tally.increment_counters('{bc_fast}', '{k}', NULL)$$, '22004', NULL, 'a NULL p_deltas is refused');

-- Batch size limit: 100000
SELECT throws_ok(
    $$SELECT tally.increment_counters(array_fill('bc_fast'::text, ARRAY[100001]),
                                      array_fill('k'::text, ARRAY[100001]), array_fill(1::bigint, ARRAY[100001]))$$,
    '54000', 'tally.increment_counters: batch of 100001 increments is over the limit of 100000',
    'a batch over 100000 increments is refused with program_limit_exceeded'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters(array_fill('bc_fast'::text, ARRAY[100000]) || 'bc_nope'::text,
                                      array_fill('k'::text, ARRAY[100001]), array_fill(1::bigint, ARRAY[100001]))$$,
    '54000', NULL,
    'the size limit is checked before the elements'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters(array_fill('bc_fast'::text, ARRAY[99999]) || 'bc_nope'::text,
                                      array_fill('k'::text, ARRAY[100000]), array_fill(1::bigint, ARRAY[100000]))$$,
    '42704', 'tally.increment_counters: element 100000: unknown counter "bc_nope"',
    'a batch of exactly 100000 is within the limit (its bad last element is what is refused)'
);

SELECT results_eq(
    'SELECT count(*), coalesce(sum(delta), 0) FROM tally.delta',
    'SELECT n, s FROM bc_before',
    'no refused batch appended any delta'
);
SELECT results_eq(
    $$SELECT tally.counter_value('bc_fast', 'x'), tally.counter_value('bc_fast', 'k')$$,
    $$VALUES (-4::bigint, 0::bigint)$$,
    'no refused batch changed any value'
);

SELECT * FROM finish();
ROLLBACK;
