-- tally.drop_counter: removes the counter with its pending deltas, totals and
-- rollups, leaves other counters alone, frees the name; refusals.
BEGIN;
SELECT plan(17);


SELECT tally.create_counter('dc_gone');
SELECT tally.create_counter('dc_kept', '{day}', true);
CREATE TEMP TABLE dc_ids ON COMMIT DROP AS
SELECT id, name FROM tally.counters WHERE name IN ('dc_gone', 'dc_kept');

-- Folded state for both counters, then more pending deltas for both, dc_gone's
-- in both delta generations (a compactor step flips between its two).
SELECT tally.increment_counter('dc_gone', 'k', 5, '2024-01-03 10:00+00');
SELECT tally.increment_counter('dc_kept', 'k', 7, '2024-01-03 10:00+00');
SELECT tally._fold(100000);
SELECT tally.increment_counter('dc_gone', 'k', 1);
SELECT tally.increment_counter('dc_kept', 'k', 3);
SELECT action FROM tally._fold_step(100000);
SELECT tally.increment_counter('dc_gone', 'k', 1);

SELECT is(
    (SELECT count(DISTINCT shard / 8) FROM tally.delta WHERE counter_id = (SELECT id FROM dc_ids WHERE name = 'dc_gone')),
    2::bigint,
    'precondition: dc_gone has pending deltas in both generations'
);
SELECT is(tally.counter_value('dc_gone', 'k'), 7::bigint, 'precondition: dc_gone counts 5 folded + 2 pending');
SELECT lives_ok($$SELECT tally.drop_counter('dc_gone')$$, 'an existing counter is dropped');
SELECT is_empty(
    $$SELECT FROM tally.counters WHERE name = 'dc_gone'$$,
    'the counter row is gone'
);
SELECT is_empty(
    $$SELECT FROM tally.delta WHERE counter_id = (SELECT id FROM dc_ids WHERE name = 'dc_gone')$$,
    'its pending deltas (of both generations) are gone'
);
SELECT is_empty(
    $$SELECT FROM tally.totals WHERE counter_id = (SELECT id FROM dc_ids WHERE name = 'dc_gone')$$,
    'its total is gone'
);
SELECT is_empty(
    $$SELECT FROM (SELECT counter_id FROM tally.rollup_minute UNION ALL SELECT counter_id FROM tally.rollup_hour
                   UNION ALL SELECT counter_id FROM tally.rollup_day UNION ALL SELECT counter_id FROM tally.rollup_week
                   UNION ALL SELECT counter_id FROM tally.rollup_month) AS r
      WHERE r.counter_id = (SELECT id FROM dc_ids WHERE name = 'dc_gone')$$,
    'its rollup rows of every granularity are gone'
);
SELECT throws_ok(
    $$SELECT tally.counter_value('dc_gone', 'k')$$,
    '42704', 'tally.counter_value: unknown counter "dc_gone"',
    'the dropped counter is unknown afterwards'
);

-- The other counter is untouched.
SELECT is(tally.counter_value('dc_kept', 'k'), 10::bigint, 'another counter keeps its folded and pending value');
SELECT is(
    (SELECT count(*) FROM tally.rollup_day WHERE counter_id = (SELECT id FROM dc_ids WHERE name = 'dc_kept')),
    1::bigint,
    'another counter keeps its rollup rows'
);

-- The name is free again, and the new counter starts from zero.
SELECT lives_ok($$SELECT tally.create_counter('dc_gone', '{hour}')$$, 'a dropped name can be created again');
SELECT is(tally.counter_value('dc_gone', 'k'), 0::bigint, 'the re-created counter starts from 0');
SELECT isnt(
    (SELECT id FROM tally.counters WHERE name = 'dc_gone'),
    (SELECT id FROM dc_ids WHERE name = 'dc_gone'),
    'the re-created counter has a new id'
);

-- Refusals
SELECT throws_ok(
    $$SELECT tally.drop_counter('dc_never')$$,
    '42704', 'tally.drop_counter: unknown counter "dc_never"',
    'an unknown counter is refused with undefined_object'
);
SELECT throws_ok(
    $$SELECT tally.drop_counter(NULL)$$,
    '22004', 'tally.drop_counter: counter name must not be NULL or empty',
    'a NULL name is refused with null_value_not_allowed'
);
SELECT throws_ok($$SELECT tally.drop_counter('')$$, '22004', NULL, 'an empty name is refused');
SELECT is(
    (SELECT count(*) FROM tally.counters WHERE name IN ('dc_gone', 'dc_kept')), 2::bigint,
    'refused drops removed nothing'
);

SELECT * FROM finish();
ROLLBACK;
