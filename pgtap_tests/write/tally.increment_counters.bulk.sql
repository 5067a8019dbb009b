-- tally.increment_counters: a bulk batch (over 1,000 increments, a backfill)
-- goes to its own shard slot (3) of the active generation, so live
-- increments never wait behind it in a fold; smaller batches use this
-- backend's slot (pid % 3).
BEGIN;
SELECT plan(3);

SELECT tally.create_counter('bulk_c');
SELECT tally.increment_counters(
    array_fill('bulk_c'::text, ARRAY[1001]), array_fill('k'::text, ARRAY[1001]), array_fill(1::bigint, ARRAY[1001])
);
SELECT tally.increment_counters(
    array_fill('bulk_c'::text, ARRAY[1000]), array_fill('j'::text, ARRAY[1000]), array_fill(1::bigint, ARRAY[1000])
);
SELECT results_eq(
    $$SELECT d.shard::int, count(*)::int FROM tally.delta AS d
      JOIN tally.counters AS c ON c.id = d.counter_id WHERE c.name = 'bulk_c' AND d.key = 'k' GROUP BY 1$$,
    $$SELECT gen * 8 + 3, 1001 FROM tally.write_gen$$,
    'a batch of 1,001 lands whole in the bulk slot 3 of the active generation'
);
SELECT results_eq(
    $$SELECT d.shard::int, count(*)::int FROM tally.delta AS d
      JOIN tally.counters AS c ON c.id = d.counter_id WHERE c.name = 'bulk_c' AND d.key = 'j' GROUP BY 1$$,
    $$SELECT gen * 8 + pg_backend_pid() % 3, 1000 FROM tally.write_gen$$,
    'a batch of 1,000 lands in this backend''s own slot (pid % 3)'
);
SELECT is(tally.counter_value('bulk_c', 'k'), 1001::bigint, 'the bulk batch counts');

SELECT * FROM finish();
ROLLBACK;
