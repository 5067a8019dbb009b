-- tally.create_counter: defaults, granularity subsets (ordered, deduplicated),
-- durable flag, name rules, and every refusal with its SQLSTATE.
BEGIN;
SELECT plan(38);

-- Defaults
SELECT lives_ok($$SELECT tally.create_counter('cc_default')$$, 'a counter with a valid name is created');
SELECT results_eq(
    $$SELECT granularities, durable FROM tally.counters WHERE name = 'cc_default'$$,
    $$VALUES ('{minute,hour,day,week,month}'::text[], false)$$,
    'by default a counter keeps every granularity and is fast (not durable)'
);
SELECT is(
    (SELECT created_at FROM tally.counters WHERE name = 'cc_default'), now(),
    'created_at is the creating transaction''s now()'
);

-- Granularity subsets
SELECT tally.create_counter('cc_sub', '{month,minute,month}');
SELECT is(
    (SELECT granularities FROM tally.counters WHERE name = 'cc_sub'), '{minute,month}'::text[],
    'granularities are stored deduplicated, finest first, whatever order they were given in'
);
SELECT tally.create_counter('cc_week_day', '{week,day}');
SELECT is(
    (SELECT granularities FROM tally.counters WHERE name = 'cc_week_day'), '{day,week}'::text[],
    '{week,day} is stored as {day,week}'
);
SELECT tally.create_counter('cc_total_only', '{}');
SELECT is(
    (SELECT granularities FROM tally.counters WHERE name = 'cc_total_only'), '{}'::text[],
    'an empty granularity list keeps only the all-time total'
);

-- Durable flag
SELECT tally.create_counter('cc_durable', '{day}', true);
SELECT results_eq(
    $$SELECT granularities, durable FROM tally.counters WHERE name = 'cc_durable'$$,
    $$VALUES ('{day}'::text[], true)$$,
    'p_durable => true makes a durable counter'
);
SELECT tally.create_counter(p_name => 'cc_fast', p_durable => false);
SELECT is(
    (SELECT durable FROM tally.counters WHERE name = 'cc_fast'), false,
    'p_durable => false makes a fast counter'
);

-- Valid names
SELECT lives_ok(
    $$SELECT tally.create_counter('a.b:c-d_9')$$,
    'a name may use lowercase letters, digits, _ . : - after the first letter'
);
SELECT lives_ok(
    $$SELECT tally.create_counter('a' || repeat('b', 62))$$,
    'a 63-character name is accepted'
);
SELECT lives_ok($$SELECT tally.create_counter('x')$$, 'a one-letter name is accepted');

-- Duplicate name
SELECT throws_ok(
    $$SELECT tally.create_counter('cc_default')$$,
    '42710', 'tally.create_counter: counter "cc_default" already exists',
    'a duplicate name is refused with duplicate_object'
);
SELECT throws_ok(
    $$SELECT tally.create_counter('cc_durable', '{}', false)$$,
    '42710', NULL,
    'a duplicate name with other options is refused too'
);
SELECT results_eq(
    $$SELECT granularities, durable FROM tally.counters WHERE name = 'cc_durable'$$,
    $$VALUES ('{day}'::text[], true)$$,
    'a refused duplicate leaves the existing counter unchanged'
);

-- Invalid names: 42602
SELECT throws_ok(
    $$SELECT tally.create_counter('Views')$$,
    '42602', 'tally.create_counter: invalid counter name "Views"',
    'an uppercase letter is refused with invalid_name'
);
SELECT throws_ok(
    $$SELECT tally.create_counter('views;drop table tally.counters')$$, '42602', NULL,
    'a semicolon (and spaces) are refused'
);
SELECT throws_ok($$SELECT tally.create_counter('a"b')$$, '42602', NULL, 'a double quote is refused');
SELECT throws_ok($$SELECT tally.create_counter('a''b')$$, '42602', NULL, 'a single quote is refused');
SELECT throws_ok($$SELECT tally.create_counter('café')$$, '42602', NULL, 'a non-ASCII letter is refused');
SELECT throws_ok($$SELECT tally.create_counter('ünïcode')$$, '42602', NULL, 'a non-ASCII first letter is refused');
SELECT throws_ok($$SELECT tally.create_counter('9lives')$$, '42602', NULL, 'a leading digit is refused');
SELECT throws_ok($$SELECT tally.create_counter('_hidden')$$, '42602', NULL, 'a leading underscore is refused');
SELECT throws_ok($$SELECT tally.create_counter('note views')$$, '42602', NULL, 'a space is refused');
SELECT throws_ok(
    $$SELECT tally.create_counter(E'views\n')$$, '42602', NULL,
    'a trailing newline is refused'
);
SELECT throws_ok(
    $$SELECT tally.create_counter('a' || repeat('b', 63))$$, '42602', NULL,
    'a 64-character name is refused'
);

-- Unknown granularity: 22023
SELECT throws_ok(
    $$SELECT tally.create_counter('cc_bad', '{day,fortnight}')$$,
    '22023', 'tally.create_counter: unknown granularity "fortnight" for counter "cc_bad"',
    'an unknown granularity is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT tally.create_counter('cc_bad', '{year}')$$, '22023', NULL,
    'granularity year does not exist'
);
SELECT throws_ok(
    $$SELECT tally.create_counter('cc_bad', '{Day}')$$, '22023', NULL,
    'granularity names are case-sensitive'
);
SELECT throws_ok(
    $$SELECT tally.create_counter('cc_bad', '{all}')$$, '22023', NULL,
    '"all" is not a granularity one can ask for: the total is always kept'
);

-- NULLs: 22004
SELECT throws_ok(
    $$SELECT tally.create_counter(NULL)$$,
    '22004', 'tally.create_counter: name must not be NULL or empty',
    'a NULL name is refused with null_value_not_allowed'
);
SELECT throws_ok($$SELECT tally.create_counter('')$$, '22004', NULL, 'an empty name is refused');
SELECT throws_ok(
    $$SELECT tally.create_counter('cc_bad', NULL)$$,
    '22004', 'tally.create_counter: granularities of "cc_bad" must not be NULL or hold NULL',
    'NULL granularities are refused'
);
SELECT throws_ok(
    $$SELECT tally.create_counter('cc_bad', ARRAY['day', NULL])$$, '22004', NULL,
    'a NULL element in the granularities is refused'
);
SELECT throws_ok(
    $$SELECT tally.create_counter('cc_bad', '{day}', NULL)$$,
    '22004', 'tally.create_counter: durable flag of "cc_bad" must not be NULL',
    'a NULL durable flag is refused'
);

-- Refusals created nothing
SELECT is_empty(
    $$SELECT name FROM tally.counters
      WHERE name IN ('Views', 'a"b', 'a''b', 'café', 'ünïcode', '9lives', '_hidden', 'note views', 'cc_bad', '')
         OR name LIKE 'views%'$$,
    'no refused call created a counter'
);
SELECT is(
    (SELECT count(*) FROM tally.counters
     WHERE name IN ('cc_default', 'cc_sub', 'cc_week_day', 'cc_total_only', 'cc_durable', 'cc_fast',
                    'a.b:c-d_9', 'x') OR name = 'a' || repeat('b', 62)),
    9::bigint,
    'each accepted call created exactly one counter'
);

-- The new counters are usable right away
SELECT is(tally.increment_counter('cc_sub', 'k'), true, 'a new counter can be incremented');
SELECT is(tally.counter_value('cc_total_only', 'k'), 0::bigint, 'a new counter reads 0');

SELECT * FROM finish();
ROLLBACK;
