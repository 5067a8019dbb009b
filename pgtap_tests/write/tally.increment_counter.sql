-- tally.increment_counter: returns true, default delta 1 at now(), negative
-- deltas, read-your-own-write before any fold, fast vs durable shards of the
-- active generation (tally.write_gen), the increment belongs to the caller's
-- transaction; refusals change nothing.
BEGIN;
SELECT plan(40);

SELECT tally.create_counter('ic_fast');
SELECT tally.create_counter('ic_durable', '{day}', true);

-- Behaviour
SELECT is(tally.increment_counter('ic_fast', 'k'), true, 'increment_counter returns true');
SELECT is(tally.counter_value('ic_fast', 'k'), 1::bigint, 'the default delta is 1, visible before any fold');
SELECT results_eq(
    $$SELECT d.key, d.delta, d.at, d.written_at FROM tally.delta AS d
      JOIN tally.counters AS c ON c.id = d.counter_id WHERE c.name = 'ic_fast'$$,
    $$VALUES ('k'::text, 1::bigint, now(), now())$$,
    'one delta row is appended, at now() by default'
);
SELECT is(tally.increment_counter('ic_fast', 'k', 41), true, 'an explicit delta is accepted');
SELECT is(tally.counter_value('ic_fast', 'k'), 42::bigint, 'the explicit delta is added');
SELECT is(tally.increment_counter('ic_fast', 'k', -50), true, 'a negative delta is accepted');
SELECT is(tally.counter_value('ic_fast', 'k'), -8::bigint, 'a negative delta subtracts (the value may go below 0)');
SELECT is(tally.counter_value('ic_fast', 'other'), 0::bigint, 'keys are independent');
SELECT is(
    tally.increment_counter('ic_fast', 'big', 9223372036854775807), true,
    'a delta of the bigint maximum is accepted'
);
SELECT is(
    tally.increment_counter(p_counter => 'ic_fast', p_key => 'at', p_at => '2024-01-03 10:30+00'), true,
    'an explicit timestamp is accepted'
);
SELECT is(
    (SELECT d.at FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id
     WHERE c.name = 'ic_fast' AND d.key = 'at'),
    '2024-01-03 10:30+00'::timestamptz,
    'the delta row carries the given timestamp'
);

-- Shards: a writer appends to the active generation (tally.write_gen.gen),
-- fast counters to its UNLOGGED shard delta_g{gen}_fast_{pid % 3} (shard
-- value gen*8 + pid % 3), durable ones to its logged shard
-- delta_g{gen}_durable_{pid % 3} (shard value gen*8 + 4 + pid % 3).
CREATE TEMP TABLE ic_gen ON COMMIT DROP AS SELECT gen FROM tally.write_gen;
SELECT is(
    (SELECT DISTINCT d.tableoid FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id
     WHERE c.name = 'ic_fast'),
    format('tally.delta_g%s_fast_%s', (SELECT gen FROM ic_gen), pg_backend_pid() % 3)::regclass::oid,
    'a fast counter''s deltas land in delta_g{write_gen.gen}_fast_(backend pid % 3)'
);
SELECT is(
    (SELECT DISTINCT d.shard::int FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id
     WHERE c.name = 'ic_fast'),
    (SELECT gen * 8 + pg_backend_pid() % 3 FROM ic_gen),
    'their shard value is gen * 8 + pid % 3'
);
SELECT is(
    (SELECT DISTINCT cl.relpersistence::text FROM tally.delta AS d
     JOIN tally.counters AS c ON c.id = d.counter_id
     JOIN pg_catalog.pg_class AS cl ON cl.oid = d.tableoid
     WHERE c.name = 'ic_fast'),
    'u',
    'that shard is UNLOGGED'
);
SELECT is(tally.increment_counter('ic_durable', 'k', 3), true, 'a durable counter is incremented');
SELECT is(
    (SELECT d.tableoid FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id
     WHERE c.name = 'ic_durable'),
    format('tally.delta_g%s_durable_%s', (SELECT gen FROM ic_gen), pg_backend_pid() % 3)::regclass::oid,
    'a durable counter''s delta lands in delta_g{write_gen.gen}_durable_(backend pid % 3)'
);
SELECT is(
    (SELECT d.shard::int FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id
     WHERE c.name = 'ic_durable'),
    (SELECT gen * 8 + 4 + pg_backend_pid() % 3 FROM ic_gen),
    'its shard value is gen * 8 + 4 + pid % 3'
);
SELECT is(
    (SELECT cl.relpersistence::text FROM tally.delta AS d
     JOIN tally.counters AS c ON c.id = d.counter_id
     JOIN pg_catalog.pg_class AS cl ON cl.oid = d.tableoid
     WHERE c.name = 'ic_durable'),
    'p',
    'that shard is logged'
);
SELECT is(tally.counter_value('ic_durable', 'k'), 3::bigint, 'a durable counter reads its own write too');

-- Once the generations flip, writers append to the other generation.
SAVEPOINT before_flip;
UPDATE tally.write_gen SET gen = 1 - gen, flips = flips + 1;
SELECT tally.increment_counter('ic_fast', 'flip', 10);
SELECT tally.increment_counter('ic_durable', 'k', 4);
SELECT results_eq(
    $$SELECT c.name, d.tableoid FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id
      WHERE (c.name = 'ic_fast' AND d.key = 'flip') OR (c.name = 'ic_durable' AND d.delta = 4)
      ORDER BY 1$$,
    $$SELECT 'ic_durable'::text, format('tally.delta_g%s_durable_%s', 1 - gen, pg_backend_pid() % 3)::regclass::oid
      FROM ic_gen
      UNION ALL
      SELECT 'ic_fast', format('tally.delta_g%s_fast_%s', 1 - gen, pg_backend_pid() % 3)::regclass::oid
      FROM ic_gen$$,
    'after a flip, fast and durable deltas land in the shards of the new active generation'
);
SELECT is(
    tally.counter_value('ic_durable', 'k'), 7::bigint,
    'counter_value sums the pending deltas of both generations'
);
ROLLBACK TO SAVEPOINT before_flip;

-- The increment joins the caller's transaction.
SAVEPOINT before_increment;
SELECT tally.increment_counter('ic_fast', 'k', 1000);
ROLLBACK TO SAVEPOINT before_increment;
SELECT is(tally.counter_value('ic_fast', 'k'), -8::bigint, 'an increment rolled back with its (sub)transaction does not count');

-- Boundaries that are accepted
SELECT is(tally.increment_counter('ic_fast', 'edge', 1, '1970-01-01 00:00:00+00'), true, '1970-01-01 00:00 UTC is accepted');
SELECT is(tally.increment_counter('ic_fast', 'edge', 1, now() + interval '1 day'), true, 'exactly one day ahead is accepted');
SELECT is(tally.increment_counter('ic_fast', repeat('x', 512)), true, 'a 512-byte key is accepted');
SELECT is(tally.increment_counter('ic_fast', repeat(chr(233), 256)), true, 'a 256-character, 512-byte key is accepted');

-- Refusals: nothing of them may be written.
CREATE TEMP TABLE ic_before ON COMMIT DROP AS SELECT count(*) AS n, coalesce(sum(delta), 0) AS s FROM tally.delta;

SELECT throws_ok(
    $$SELECT tally.increment_counter('ic_nope', 'k')$$,
    '42704', 'tally.increment_counter: unknown counter "ic_nope"',
    'an unknown counter is refused with undefined_object'
);
SELECT throws_ok(
    $$SELECT tally.increment_counter(NULL, 'k')$$, '22004',
    'tally.increment_counter: counter name must not be NULL or empty',
    'a NULL counter name is refused with null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT tally.increment_counter('ic_fast', NULL)$$,
    '22004', 'tally.increment_counter: key must not be NULL or empty',
    'a NULL key is refused with null_value_not_allowed'
);
SELECT throws_ok($$SELECT tally.increment_counter('ic_fast', '')$$, '22004', NULL, 'an empty key is refused');
SELECT throws_ok(
    $$SELECT tally.increment_counter('ic_fast', repeat('x', 513))$$,
    '22001', 'tally.increment_counter: key of 513 bytes is over the 512-byte limit',
    'a key over 512 bytes is refused with string_data_right_truncation'
);
SELECT throws_ok(
    $$SELECT tally.increment_counter('ic_fast', repeat(chr(233), 257))$$, '22001',
    'tally.increment_counter: key of 514 bytes is over the 512-byte limit',
    'the key limit is in bytes: 257 two-byte characters are refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counter('ic_fast', 'k', NULL)$$,
    '22004', 'tally.increment_counter: delta for counter "ic_fast" must not be NULL',
    'a NULL delta is refused with null_value_not_allowed'
);
-- A NULL timestamp is null_value_not_allowed (22004) like every other NULL
-- argument; the out-of-range ones below are datetime_field_overflow (22008).
SELECT throws_ok(
    $$SELECT tally.increment_counter('ic_fast', 'k', 1, NULL)$$,
    '22004', 'tally.increment_counter: timestamp must not be NULL',
    'a NULL timestamp is refused with null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT tally.increment_counter('ic_fast', 'k', 1, 'infinity')$$,
    '22008', 'tally.increment_counter: timestamp infinity is out of range',
    'an infinite timestamp is refused with datetime_field_overflow'
);
SELECT throws_ok(
    $$SELECT tally.increment_counter('ic_fast', 'k', 1, '-infinity')$$, '22008', NULL,
    'a -infinity timestamp is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counter('ic_fast', 'k', 1, '1969-12-31 23:59:59.999999+00')$$, '22008', NULL,
    'a timestamp before 1970-01-01 UTC is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counter('ic_fast', 'k', 1, now() + interval '1 day 1 microsecond')$$, '22008', NULL,
    'a timestamp more than a day ahead is refused'
);
SELECT results_eq(
    'SELECT count(*), coalesce(sum(delta), 0) FROM tally.delta',
    'SELECT n, s FROM ic_before',
    'the refused calls appended no delta'
);
SELECT is(tally.counter_value('ic_fast', 'k'), -8::bigint, 'the refused calls changed no value');

SELECT * FROM finish();
ROLLBACK;
