-- tally.release_quarantined: the way out of tally.quarantine. 'apply' puts
-- a key's deltas set aside back among the pending deltas (a logged shard)
-- for the next fold, refused while they would still overflow; 'discard'
-- deletes them; every release recorded per key in
-- tally.quarantine_releases; tally.health's quarantine check follows.
BEGIN;
SELECT plan(19);

SELECT tally.create_counter('rq');
SELECT tally.create_counter('rq_other');
CREATE TEMP TABLE rq_ids ON COMMIT DROP AS SELECT (SELECT id FROM tally.counters WHERE name = 'rq') AS rq;
-- What a fold sets aside: a key at the top of bigint plus deltas that would
-- push it over, and another key's.
INSERT INTO tally.totals (counter_id, key, value)
SELECT rq, 'full', 9223372036854775000 FROM rq_ids;
INSERT INTO tally.quarantine (counter_id, key, delta, at, written_at, reason)
SELECT rq, k, d, now(), now(), 'folding this key would overflow bigint (its total, a minute or a bucket)'
FROM rq_ids, (VALUES ('full', 1000::bigint), ('full', 2000), ('small', 7)) AS q (k, d);

-- Refusals: nothing changes.
SELECT throws_ok(
    $$SELECT tally.release_quarantined('rq', 'full', 'keep')$$, '22023',
    'tally.release_quarantined: action ''keep'' is not apply or discard', 'an unknown action is refused (22023)'
);
SELECT throws_ok(
    $$SELECT tally.release_quarantined('rq', 'full', NULL)$$, '22023', NULL, 'a NULL action is refused (22023)'
);
SELECT throws_ok(
    $$SELECT tally.release_quarantined('nope', 'full', 'apply')$$, '42704',
    'tally.release_quarantined: unknown counter "nope"', 'an unknown counter is refused (42704)'
);
SELECT throws_ok(
    $$SELECT tally.release_quarantined('rq', '', 'apply')$$, '22004', NULL, 'an empty key is refused'
);
SELECT throws_ok(
    $$SELECT tally.release_quarantined('rq', 'full', 'apply')$$, '22003',
    'tally.release_quarantined: the deltas of key "full" of counter "rq" set aside (sum 3000) still do not fit: '
    'its value would be 9223372036854778000',
    'apply is refused (22003) while the key with them would overflow bigint'
);
SELECT is((SELECT count(*) FROM tally.quarantine), 3::bigint, 'nothing was released by the refusals');
SELECT is_empty('SELECT FROM tally.quarantine_releases', 'nor recorded');
SELECT is((SELECT status FROM tally.health WHERE "check" = 'quarantine'), 'warn', 'health: quarantine is warn');

-- A correction makes room; then apply puts them back for the next fold.
UPDATE tally.totals SET value = 9223372036854770000 WHERE key = 'full';
SELECT is(tally.release_quarantined('rq', 'full', 'apply'), 2::bigint, 'apply releases the key''s 2 deltas');
SELECT results_eq(
    $$SELECT d.delta, s.durable FROM tally.delta AS d JOIN tally.shards AS s ON s.shard = d.shard
      WHERE d.key = 'full' ORDER BY d.delta$$,
    $$VALUES (1000::bigint, true), (2000, true)$$,
    'they are pending again, in a logged shard'
);
SELECT is(tally.counter_value('rq', 'full'), 9223372036854773000::bigint, 'and counted: the value includes them');
SELECT is(tally._fold(100000), 2::bigint, 'the next fold folds them');
SELECT is(
    (SELECT value FROM tally.totals WHERE key = 'full'), 9223372036854773000::bigint, 'into the total'
);
-- Discard, for every key of the counter (p_key NULL).
SELECT is(tally.release_quarantined('rq', NULL, 'discard'), 1::bigint, 'discard with no key releases every key''s');
SELECT is_empty('SELECT FROM tally.quarantine', 'nothing is left set aside');
SELECT results_eq(
    $$SELECT c.name, r.key, r.action, r.deltas, r.delta_sum, r.released_by = session_user
      FROM tally.quarantine_releases AS r JOIN tally.counters AS c ON c.id = r.counter_id ORDER BY r.id$$,
    $$VALUES ('rq'::text, 'full'::text, 'apply'::text, 2::bigint, 3000::numeric, true),
             ('rq', 'small', 'discard', 1, 7, true)$$,
    'every release is recorded: counter, key, action, how many, their sum, by whom'
);
SELECT is((SELECT status FROM tally.health WHERE "check" = 'quarantine'), 'ok', 'health: nothing quarantined, ok');
SELECT is(tally.release_quarantined('rq_other', NULL, 'apply'), 0::bigint, 'nothing to release: 0');

-- Dropping a counter drops what was set aside for it.
INSERT INTO tally.quarantine (counter_id, key, delta, at, written_at, reason)
SELECT rq, 'gone', 1, now(), now(), 'x' FROM rq_ids;
SELECT tally.drop_counter('rq');
SELECT is_empty('SELECT FROM tally.quarantine', 'drop_counter removes the counter''s quarantined deltas');

SELECT * FROM finish();
ROLLBACK;
