-- Idempotency keys: increment_counter(..., p_event_id) and
-- increment_counters(..., p_event_ids) apply an event id once per counter
-- within the window (tally.set_event_window, default 7 days); a replay
-- returns false (or is left out of a batch's count) and changes nothing.
BEGIN;
SELECT plan(47);

SELECT tally.create_counter('ev_fast');
SELECT tally.create_counter('ev_durable', '{day}', true);
CREATE TEMP VIEW ev_state AS
SELECT (SELECT count(*) FROM tally.delta) AS deltas, (SELECT count(*) FROM tally.event_ids) AS ids,
       (SELECT coalesce(sum(d.delta), 0) FROM tally.delta AS d) AS total;

-- Single increments
SELECT is(tally.increment_counter('ev_fast', 'k', 5, now(), 'e-1'), true, 'a new event id is applied: true');
CREATE TEMP TABLE ev_before ON COMMIT DROP AS SELECT * FROM ev_state;
SELECT is(tally.increment_counter('ev_fast', 'k', 5, now(), 'e-1'), false, 'the same event id again: false');
SELECT is(tally.increment_counter('ev_fast', 'other-key', 7, now() - interval '1 day', 'e-1'), false,
          'the same event id with other arguments: false (the id decides)');
SELECT results_eq('SELECT * FROM ev_state', 'SELECT * FROM ev_before', 'a replay writes no delta and no id');
SELECT is(tally.counter_value('ev_fast', 'k'), 5::bigint, 'counted once');
SELECT is(tally.increment_counter('ev_durable', 'k', 2, now(), 'e-1'), true,
          'the same event id on another counter is another event: applied');
SELECT is(tally.increment_counter('ev_fast', 'k', 1, now(), NULL), true, 'no event id: applied');
SELECT is(tally.increment_counter('ev_fast', 'k', 1, now(), NULL), true, 'no event id: applied every time');
SELECT is(tally.counter_value('ev_fast', 'k'), 7::bigint, 'without an event id nothing is deduplicated');
SELECT results_eq(
    $$SELECT cl.relpersistence::text FROM tally.delta AS d JOIN pg_catalog.pg_class AS cl ON cl.oid = d.tableoid
      JOIN tally.counters AS c ON c.id = d.counter_id WHERE c.name = 'ev_fast' ORDER BY d.delta DESC$$,
    $$VALUES ('p'::text), ('u'), ('u')$$,
    'on a fast counter an increment with an event id goes to a logged shard (its id and delta share fate), '
    'without one to an unlogged shard'
);

-- The window. A new install has two 7-day partitions: [T - 7, T) and
-- [T, T + 7), T today; an id's row has the first day of its partition.
SELECT is((SELECT event_window_days FROM tally.settings), 7, 'the window is 7 days by default');
-- A partition wholly past the window ([T - 14, T - 7)) exists until
-- maintain() drops it.
SELECT format('CREATE TABLE tally.event_ids_p%s PARTITION OF tally.event_ids FOR VALUES FROM (%L) TO (%L)',
              to_char(d, 'YYYYMMDD'), d, d + 7)
FROM (SELECT (now() AT TIME ZONE 'UTC')::date - 14 AS d) AS x \gexec
INSERT INTO tally.event_ids (counter_id, event_id, seen_on)
SELECT c.id, x.e, (now() AT TIME ZONE 'UTC')::date - x.age
FROM tally.counters AS c, (VALUES ('old-1', 7), ('old-7', 7), ('old-8', 14)) AS x (e, age)
WHERE c.name = 'ev_fast';
SELECT is(tally.increment_counter('ev_fast', 'w', 1, now(), 'old-1'), false, 'an id applied yesterday is a replay');
SELECT is(tally.increment_counter('ev_fast', 'w', 1, now(), 'old-7'), false,
          'an id applied 7 days ago is still within the window');
SELECT is(tally.increment_counter('ev_fast', 'w', 1, now(), 'old-8'), true,
          'an id in a partition wholly past the window is applied again');
SELECT lives_ok($$SELECT tally.set_event_window(10)$$, 'set_event_window(10)');
INSERT INTO tally.event_ids (counter_id, event_id, seen_on)
SELECT c.id, 'old-9', (now() AT TIME ZONE 'UTC')::date - 14 FROM tally.counters AS c WHERE c.name = 'ev_fast';
SELECT is(tally.increment_counter('ev_fast', 'w', 1, now(), 'old-9'), false,
          'with a 10-day window an id of the partition that reaches 9 days back is a replay');
SELECT results_eq(
    'SELECT day, next_day FROM tally.event_days ORDER BY day',
    $$SELECT d, d + 7 FROM unnest(ARRAY[(now() AT TIME ZONE 'UTC')::date - 14, (now() AT TIME ZONE 'UTC')::date - 7,
                                      (now() AT TIME ZONE 'UTC')::date]) AS d$$,
    'lengthening the window keeps (and lists) the partition that reaches into it'
);
SELECT lives_ok($$SELECT tally.set_event_window(7)$$, 'set_event_window(7)');
SELECT is((SELECT min(day) FROM tally.event_days), (now() AT TIME ZONE 'UTC')::date - 7,
          'shortening it again drops that partition');
SELECT throws_ok($$SELECT tally.set_event_window(0)$$, '22023',
                 'tally.set_event_window: window of 0 days is out of range', 'a window of 0 days is refused');
SELECT throws_ok($$SELECT tally.set_event_window(NULL)$$, '22023',
                 'tally.set_event_window: window of NULL days is out of range', 'a NULL window is refused');

-- The partitions a claim is written to (tally._claim_days): normally only
-- today's; also the one before while a transaction that may predate
-- today's partition's boundary runs, or while that boundary is not noted.
SELECT results_eq('SELECT * FROM tally._claim_days()', $$VALUES ((now() AT TIME ZONE 'UTC')::date)$$,
                  'a claim is normally written to today''s partition only');
UPDATE tally.event_days SET first_xid = (pg_snapshot_xmax(pg_current_snapshot())::text::bigint + 1000)::text::xid8
WHERE day = (now() AT TIME ZONE 'UTC')::date;
SELECT set_eq(
    'SELECT * FROM tally._claim_days()',
    $$VALUES ((now() AT TIME ZONE 'UTC')::date), ((now() AT TIME ZONE 'UTC')::date - 7)$$,
    'while a transaction older than a partition''s boundary may run, also to the partition before it'
);
UPDATE tally.event_days SET first_xid = NULL WHERE day = (now() AT TIME ZONE 'UTC')::date;
SELECT set_eq(
    'SELECT * FROM tally._claim_days()',
    $$VALUES ((now() AT TIME ZONE 'UTC')::date), ((now() AT TIME ZONE 'UTC')::date - 7)$$,
    'and while that boundary is not noted yet'
);
SELECT is(tally.increment_counter('ev_fast', 'd', 1, now(), 'd-1'), true, 'a claim over two partitions is applied');
SELECT is(
    (SELECT count(*) FROM tally.event_ids WHERE event_id = 'd-1'), 2::bigint, 'with one row in each of the two'
);
SELECT is(tally.increment_counter('ev_fast', 'd', 1, now(), 'd-1'), false, 'and is a replay afterwards');
SELECT lives_ok('SELECT tally._event_partitions()', 'the next maintenance notes the boundary');
UPDATE tally.event_days SET first_xid = '1'::xid8 WHERE day = (now() AT TIME ZONE 'UTC')::date;
SELECT results_eq('SELECT * FROM tally._claim_days()', $$VALUES ((now() AT TIME ZONE 'UTC')::date)$$,
                  'then, with no old transaction running, only today''s again');
-- Found by lookup in the partition before: no row written anywhere.
INSERT INTO tally.event_ids (counter_id, event_id, seen_on)
SELECT c.id, 'prev-1', (now() AT TIME ZONE 'UTC')::date - 7 FROM tally.counters AS c WHERE c.name = 'ev_fast';
SELECT is(tally.increment_counter('ev_fast', 'd', 1, now(), 'prev-1'), false,
          'an id of the partition before is found by lookup');
SELECT is((SELECT count(*) FROM tally.event_ids WHERE event_id = 'prev-1'), 1::bigint, 'and claimed nowhere else');
-- No partition on or before today: a clear error, nothing applied.
SELECT tally.counter_value('ev_fast', 'none') AS none_before \gset
UPDATE tally.event_days SET day = day + 30, next_day = next_day + 30;
SELECT throws_ok($$SELECT tally.increment_counter('ev_fast', 'none', 1, now(), 'none-1')$$, '55000',
                 'tally.increment_counter: the idempotency store has no partition for today',
                 'with no partition for today a claim refuses with a clear error');
SELECT throws_ok($$SELECT tally.increment_counters('{ev_fast}', '{none}', '{1}', NULL, '{none-2}')$$, '55000',
                 'tally.increment_counters: the idempotency store has no partition for today',
                 'and so does a batch');
UPDATE tally.event_days SET day = day - 30, next_day = next_day - 30;
SELECT is(tally.counter_value('ev_fast', 'none'), :'none_before'::bigint, 'and nothing was applied');

-- Batches
SELECT is(
    tally.increment_counters('{ev_fast,ev_fast,ev_fast,ev_fast}', '{b,b,b,b}', '{1,10,100,1000}', NULL,
                             '{e-1,b-1,b-2,b-1}'),
    2::bigint,
    'a batch leaves out ids applied before and repeats within the batch, and counts what it applied'
);
SELECT is(tally.counter_value('ev_fast', 'b'), 110::bigint, 'of a repeated id within a batch the first element counts');
SELECT is(
    tally.increment_counters('{ev_fast,ev_fast,ev_fast}', '{b,b,b}', '{1,10,100}', NULL, '{b-1,b-2,b-3}'),
    1::bigint,
    'replaying a batch that was partly applied applies exactly the rest'
);
SELECT is(tally.counter_value('ev_fast', 'b'), 210::bigint, 'the rest is counted once');

-- Refusals: each names the function and value, has a SQLSTATE, and writes nothing
CREATE TEMP TABLE ev_before2 ON COMMIT DROP AS SELECT * FROM ev_state;
SELECT throws_ok(
    $$SELECT tally.increment_counter('ev_fast', 'k', 1, now(), '')$$,
    '22023', 'tally.increment_counter: event id must not be empty', 'an empty event id is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counter('ev_fast', 'k', 1, now(), repeat('x', 257))$$,
    '22001', 'tally.increment_counter: event id of 257 bytes is over the 256-byte limit',
    'an event id over 256 bytes is refused'
);
SELECT lives_ok(
    $$SELECT tally.increment_counter('ev_fast', 'k', 1, now(), repeat('x', 256))$$, 'an event id of 256 bytes is fine'
);
DELETE FROM tally.event_ids WHERE event_id = repeat('x', 256);
DELETE FROM tally.delta AS d USING tally.counters AS c
WHERE c.id = d.counter_id AND c.name = 'ev_fast' AND d.key = 'k' AND d.tableoid::regclass::text LIKE '%durable%'
  AND d.delta = 1;
SELECT throws_ok(
    $$SELECT tally.increment_counters('{ev_fast,ev_fast}', '{k,k}', '{1,1}', NULL, '{n-1,NULL}')$$,
    '22004', 'tally.increment_counters: element 2: event id must not be NULL', 'a NULL element in p_event_ids is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{ev_fast,ev_fast}', '{k,k}', '{1,1}', NULL, '{n-1}')$$,
    '2202E',
    'tally.increment_counters: arrays differ in length (counters 2, keys 2, deltas 2, ats NULL, event ids 1)',
    'p_event_ids of another length is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{ev_fast,ev_fast}', '{k,k}', '{1,1}', NULL, '{n-1,""}')$$,
    '22023', 'tally.increment_counters: element 2: event id must not be empty', 'an empty element is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{ev_fast,ev_fast}', '{k,NULL}', '{1,1}', NULL, '{n-1,n-2}')$$,
    '22004', 'tally.increment_counters: element 2: key must not be NULL or empty',
    'a bad element elsewhere refuses the batch with event ids, too'
);
SELECT results_eq('SELECT * FROM ev_state', 'SELECT * FROM ev_before2', 'no refusal wrote a delta or an event id');
SELECT is_empty($$SELECT FROM tally.event_ids WHERE event_id LIKE 'n-%'$$, 'no event id of a refused batch is kept');

SELECT * FROM finish();
ROLLBACK;
