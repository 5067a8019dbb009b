-- tally._claim_events looks each wanted event id up on its own: a claim
-- reads none of the other ids of the window, however the session's plan
-- of it was made. Its plan is generic and made once per session; made
-- while the day's partition was new (here: empty and never analyzed, as
-- every day's partition starts), a join that hashes every id of the window
-- would read all of them for every claim. Counted with
-- pg_stat_xact_user_tables (this transaction's reads of tally.event_ids'
-- partitions), after 20,000 ids were claimed; the claims stay exact.
BEGIN;
SELECT plan(6);

SELECT tally.create_counter('ce');
CREATE TEMP VIEW ce_reads AS
SELECT coalesce(sum(coalesce(t.seq_tup_read, 0) + coalesce(t.idx_tup_fetch, 0)), 0)::bigint AS n
FROM pg_catalog.pg_stat_xact_user_tables AS t
JOIN pg_catalog.pg_inherits AS i ON i.inhrelid = t.relid
WHERE i.inhparent = 'tally.event_ids'::regclass;

-- The session's plan is made by its first claim, with the window empty.
SELECT is(tally.increment_counter('ce', 'k', 1, now(), 'first'), true, 'a first id is claimed and applied');
SELECT is(
    tally.increment_counters(
        array_fill('ce'::text, ARRAY[20000]), array_fill('k'::text, ARRAY[20000]), array_fill(1::bigint, ARRAY[20000]),
        NULL, ARRAY(SELECT 'id-' || g FROM generate_series(1, 20000) AS g)),
    20000::bigint,
    'then 20,000 more ids in one batch: each applied'
);

CREATE TEMP TABLE ce_before ON COMMIT DROP AS SELECT n FROM ce_reads;
SELECT is(tally.increment_counter('ce', 'k', 1, now(), 'one more'), true, 'one more id is claimed and applied');
SELECT is(
    (SELECT r.n - b.n FROM ce_reads AS r, ce_before AS b), 0::bigint,
    'claiming it fetched no row of tally.event_ids (an index probe per day finds none), not the 20,001 ids claimed'
);
SELECT is(tally.increment_counter('ce', 'k', 1, now(), 'id-777'), false, 'a replay of a claimed id is not applied');
SELECT is(tally.counter_value('ce', 'k'), 20002::bigint, 'the counter counts each of the 20,002 ids once');

SELECT * FROM finish();
ROLLBACK;
