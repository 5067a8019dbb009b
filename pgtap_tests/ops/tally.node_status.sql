-- tally.node_status and tally.pending_deltas on a primary (a hot standby:
-- python_client/tests/test_replica.py): the node's role, its standbys, an
-- unrecorded crash reset; what waits to be folded per shard and counter.
BEGIN;
SELECT plan(8);

SELECT results_eq(
    'SELECT role, replayed_at, streaming, unrecorded_crash FROM tally.node_status()',
    $$VALUES ('primary'::text, NULL::timestamptz, NULL::boolean, false)$$,
    'a primary, no crash reset pending'
);
SELECT is(
    (SELECT standbys FROM tally.node_status()), (SELECT count(*)::integer FROM pg_stat_replication),
    'standbys: those streaming from it'
);
DELETE FROM tally.crash_marker;
SELECT is((SELECT unrecorded_crash FROM tally.node_status()), true, 'the crash marker gone: unrecorded_crash');
INSERT INTO tally.crash_marker DEFAULT VALUES;

SELECT is_empty('SELECT * FROM tally.pending_deltas()', 'nothing pending on a fresh install');
SELECT tally.create_counter('pd_fast');
SELECT tally.create_counter('pd_durable', '{day}', true);
SELECT tally.increment_counters('{pd_fast,pd_fast,pd_durable}', '{a,b,a}', '{1,1,1}');
SELECT tally.increment_counter('pd_fast', 'c', 1, now(), 'an-event');
UPDATE tally.delta SET written_at = now() - interval '5 seconds' WHERE key = 'b';
SELECT results_eq(
    $$SELECT s.durable, p.counter, p.deltas, p.oldest_written_at
      FROM tally.pending_deltas() AS p JOIN tally.shards AS s ON s.shard = p.shard ORDER BY 1, 2$$,
    $$VALUES (false, 'pd_fast'::text, 2::bigint, now() - interval '5 seconds'),
             (true, 'pd_durable', 1, now()), (true, 'pd_fast', 1, now())$$,
    'per shard and counter: how many, the oldest; an event-id increment is in a logged shard'
);
-- A delta of a counter dropped meanwhile (the fold discards it): no name.
INSERT INTO tally.delta (shard, counter_id, key, delta, at) VALUES (0, -1, 'x', 1, now());
SELECT is((SELECT count(*) FROM tally.pending_deltas() WHERE counter IS NULL), 1::bigint, 'a dropped counter''s: NULL');

GRANT USAGE ON SCHEMA tap TO tally_reader;
SET LOCAL ROLE tally_reader;
SELECT is((SELECT role FROM tally.node_status()), 'primary', 'tally_reader reads tally.node_status()');
SELECT is((SELECT sum(deltas)::bigint FROM tally.pending_deltas()), 5::bigint, 'and tally.pending_deltas()');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
