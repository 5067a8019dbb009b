-- tally._fold_step with p_max_gen_age: a backlog in the inactive generation
-- does not hold live increments back longer than that: the generations
-- rotate (action 'rotated') and nothing is folded or lost by the rotation.
BEGIN;
SELECT plan(9);

SELECT tally.set_retention(NULL, 'minute', NULL);
SELECT tally.create_counter('rot', '{hour}');
-- Start from an empty inactive generation: fold whatever is there, flip.
SELECT tally._fold(100000);
SELECT tally.increment_counter('rot', 'k', 5);          -- lands in the active generation
SELECT * FROM tally._fold_step(1000);                    -- flips: that delta is now inactive
CREATE TEMP TABLE rot_before ON COMMIT DROP AS SELECT w.* FROM tally.write_gen AS w;
SELECT tally.increment_counter('rot', 'k', 7);          -- a live increment in the new active generation

-- The active generation is young: no rotation, the inactive delta is folded.
UPDATE tally.write_gen SET flipped_at = now();
SELECT results_eq(
    $$SELECT action, folded FROM tally._fold_step(1000, NULL, 1, '1 hour')$$,
    $$VALUES ('folded'::text, 1::bigint)$$,
    'a young active generation: the step folds the inactive backlog'
);

-- Put a backlog back into the inactive generation, age the active one.
INSERT INTO tally.delta (shard, counter_id, key, delta, at)
SELECT (1 - w.gen) * 8 + 1, c.id, 'k', 100, now()
FROM tally.write_gen AS w, tally.counters AS c WHERE c.name = 'rot';
UPDATE tally.write_gen SET flipped_at = now() - interval '10 seconds';
SELECT results_eq(
    $$SELECT action, folded FROM tally._fold_step(1000, NULL, 1, '2 seconds')$$,
    $$VALUES ('rotated'::text, 0::bigint)$$,
    'an old active generation and a backlog: the step rotates instead of folding'
);
SELECT is(
    (SELECT gen::int FROM tally.write_gen), (SELECT 1 - gen::int FROM rot_before),
    'writers now append to the generation holding the backlog'
);
SELECT is((SELECT flips FROM tally.write_gen), (SELECT flips + 1 FROM rot_before), 'the rotation counts as a flip');
SELECT is(tally.counter_value('rot', 'k'), 112::bigint, 'nothing is lost or doubled by the rotation');
SELECT is(
    (SELECT count(*)::int FROM tally.fold_runs WHERE mode IS NULL), 0, 'a rotation is not recorded as a fold'
);

-- Without p_max_gen_age (tally._fold, pgTAP) it never rotates.
UPDATE tally.write_gen SET flipped_at = now() - interval '1 day';
SELECT is(
    (SELECT action FROM tally._fold_step(1000)), 'folded',
    'p_max_gen_age NULL: never rotates, folds'
);
SELECT tally._fold(100000);
SELECT is(
    (SELECT t.value FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id WHERE c.name = 'rot'),
    112::bigint,
    'after folding everything the total holds all three increments, once'
);

-- Nothing waiting in the active generation: a rotation would gain nothing.
INSERT INTO tally.delta (shard, counter_id, key, delta, at)
SELECT (1 - w.gen) * 8 + 1, c.id, 'k', 1000, now()
FROM tally.write_gen AS w, tally.counters AS c WHERE c.name = 'rot';
UPDATE tally.write_gen SET flipped_at = now() - interval '10 seconds';
SELECT results_eq(
    $$SELECT (SELECT count(*) FROM tally.delta AS d JOIN tally.shards AS s ON s.shard_table = d.tableoid::regclass
              WHERE s.gen = (SELECT w.gen FROM tally.write_gen AS w)),
             f.action, f.folded
      FROM tally._fold_step(1000, NULL, 1, '2 seconds') AS f$$,
    $$VALUES (0::bigint, 'folded'::text, 1::bigint)$$,
    'an old but empty active generation and a backlog: the step folds, it does not rotate'
);

SELECT * FROM finish();
ROLLBACK;
