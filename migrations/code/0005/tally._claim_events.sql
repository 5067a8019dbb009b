-- tally._claim_events: the idempotency check. Of the (counter, event id)
-- pairs given, claim those not applied within the window and return them;
-- a pair already applied (or claimed by a transaction that commits first)
-- is not returned, and its increment must be left out.
--
-- A pair applied and committed anywhere in the window is found by lookup.
-- Otherwise the pair is claimed by rows in the partitions of
-- tally._claim_days() (the UTC day the transaction began, the day of this
-- statement, and the day before every day boundary that a still-running
-- transaction may predate), all in one INSERT ... ON CONFLICT DO NOTHING
-- sorted by (counter, event id, day). Two transactions that carry the same
-- pair always share at least one of those days, so the second waits for
-- the first and then sees its row (or takes over if it rolled back); the
-- pair is claimed only if every one of its rows went in. Sorted insertion
-- means two batches sharing ids cannot deadlock.
-- Not SECURITY DEFINER: only tally's own definer functions call it.
-- PL/pgSQL so that its plan is cached for the session.
CREATE OR REPLACE FUNCTION tally._claim_events(p_counter_ids integer[], p_event_ids text[])
RETURNS TABLE (counter_id integer, event_id text)
LANGUAGE plpgsql
VOLATILE
-- A tiny statement run on every claim: one generic plan, pruned at run
-- time (a custom plan per call costs ten times the work), and no JIT.
SET plan_cache_mode = force_generic_plan
SET jit = off
AS $$
BEGIN
    RETURN QUERY
    WITH wanted AS (
        SELECT DISTINCT
            u.c,
            u.e
        FROM unnest(p_counter_ids, p_event_ids) AS u (c, e)
    ),

    -- Each wanted id looked up on its own (LATERAL: index probes, one per
    -- day of the window), never a join that reads every id of the window:
    -- this plan is generic and made once per session, often while the
    -- day's partition is new and its size unknown, and a hash anti join
    -- chosen then would read the whole window for every claim.
    unseen AS (
        SELECT
            w.c,
            w.e
        FROM wanted AS w
        LEFT JOIN LATERAL (
            SELECT TRUE AS hit
            FROM tally.event_ids AS x
            WHERE
                x.counter_id = w.c AND x.event_id = w.e
                AND x.seen_on >= (now() AT TIME ZONE 'UTC')::date
                - (SELECT s.event_window_days FROM tally.settings AS s)
            LIMIT 1
        ) AS seen ON TRUE
        WHERE seen.hit IS NULL
    ),

    days AS MATERIALIZED (
        SELECT d.d FROM tally._claim_days() AS d (d)
    ),

    claimed AS (
        INSERT INTO tally.event_ids (counter_id, event_id, seen_on)
        SELECT
            n.c,
            n.e,
            d.d AS seen_on
        FROM unseen AS n CROSS JOIN days AS d
        ORDER BY n.c, n.e, d.d
        ON CONFLICT DO NOTHING
        RETURNING event_ids.counter_id, event_ids.event_id
    )

    SELECT
        k.counter_id,
        k.event_id
    FROM claimed AS k
    GROUP BY k.counter_id, k.event_id
    HAVING count(*) = (SELECT count(*) FROM days);
END;
$$;

COMMENT ON FUNCTION tally._claim_events(integer[], text[]) IS
'Internal: claim (counter, event id) pairs not applied within the idempotency window; returns the claimed ones.';
