-- tally.counter_value: the all-time total = folded total + pending deltas,
-- the same before and after a fold; refusals.
BEGIN;
SELECT plan(17);


SELECT tally.create_counter('cv_c');
SELECT tally.create_counter('cv_other', '{}', true);

SELECT is(tally.counter_value('cv_c', 'k'), 0::bigint, 'a key never incremented reads 0');

-- Pending only
SELECT tally.increment_counter('cv_c', 'k', 5, '2024-01-03 10:00+00');
SELECT tally.increment_counter('cv_c', 'k', 7);
SELECT tally.increment_counter('cv_c', 'k2', 100);
SELECT tally.increment_counter('cv_other', 'k', 1000);
SELECT is(tally.counter_value('cv_c', 'k'), 12::bigint, 'pending deltas are counted before any fold');
SELECT is(tally.counter_value('cv_c', 'k2'), 100::bigint, 'each key has its own value');
SELECT is(tally.counter_value('cv_other', 'k'), 1000::bigint, 'the same key of another counter is independent');
SELECT is(tally.counter_value('cv_c', 'K'), 0::bigint, 'keys are case-sensitive');

-- Equal before and after a fold
CREATE TEMP TABLE cv_before ON COMMIT DROP AS
SELECT tally.counter_value('cv_c', 'k') AS k, tally.counter_value('cv_c', 'k2') AS k2,
       tally.counter_value('cv_other', 'k') AS other;
CREATE TEMP TABLE cv_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is((SELECT n FROM cv_fold), 4::bigint, 'the fold folds the 4 pending deltas, no more');
SELECT is_empty(
    $$SELECT FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id WHERE c.name LIKE 'cv\_%'$$,
    'nothing of these counters is pending after the fold'
);
SELECT results_eq(
    $$SELECT tally.counter_value('cv_c', 'k'), tally.counter_value('cv_c', 'k2'), tally.counter_value('cv_other', 'k')$$,
    'SELECT k, k2, other FROM cv_before',
    'counter_value is the same before and after the fold'
);

-- Folded plus pending
SELECT tally.increment_counter('cv_c', 'k', -2);
SELECT tally.increment_counter('cv_c', 'k', 30);
SELECT is(
    (SELECT t.value FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id
     WHERE c.name = 'cv_c' AND t.key = 'k'),
    12::bigint,
    'the folded part (12) is in tally.totals'
);
SELECT is(tally.counter_value('cv_c', 'k'), 40::bigint, 'counter_value adds the pending deltas (28) to the folded total (12)');

-- Refusals
SELECT throws_ok(
    $$SELECT tally.counter_value('cv_nope', 'k')$$,
    '42704', 'tally.counter_value: unknown counter "cv_nope"',
    'an unknown counter is refused with undefined_object'
);
SELECT throws_ok(
    $$SELECT tally.counter_value(NULL, 'k')$$,
    '22004', 'tally.counter_value: counter name must not be NULL or empty',
    'a NULL counter name is refused with null_value_not_allowed'
);
SELECT throws_ok($$SELECT tally.counter_value('', 'k')$$, '22004', NULL, 'an empty counter name is refused');
SELECT throws_ok(
    $$SELECT tally.counter_value('cv_c', NULL)$$,
    '22004', 'tally.counter_value: key must not be NULL or empty',
    'a NULL key is refused with null_value_not_allowed'
);
SELECT throws_ok($$SELECT tally.counter_value('cv_c', '')$$, '22004', NULL, 'an empty key is refused');
SELECT throws_ok(
    $$SELECT tally.counter_value('cv_c', repeat('x', 513))$$,
    '22001', 'tally.counter_value: key of 513 bytes is over the 512-byte limit',
    'a key over 512 bytes is refused with string_data_right_truncation'
);
SELECT is(tally.counter_value('cv_c', repeat('x', 512)), 0::bigint, 'a 512-byte key is accepted');

SELECT * FROM finish();
ROLLBACK;
