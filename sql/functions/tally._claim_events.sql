-- tally._claim_events: the idempotency check. Of the (counter, event id)
-- pairs given, claim those not applied within the window and return them;
-- a pair already applied (or claimed by a transaction that commits first)
-- is not returned, and its increment must be left out.
--
-- A claim is a row in today's (UTC, transaction start) partition of
-- tally.event_ids, inserted ON CONFLICT DO NOTHING in sorted order: a
-- concurrent claim of the same pair waits for the first transaction and
-- then sees its row (or takes over if it rolled back); sorted order means
-- two batches sharing ids cannot deadlock. Committed claims of earlier days
-- are found by lookup. During the first hour of a day the claim is also
-- inserted into yesterday's partition, so a transaction that began before
-- midnight and still holds the same id uncommitted is waited for, too.
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

    unseen AS (
        SELECT
            w.c,
            w.e
        FROM wanted AS w
        WHERE NOT EXISTS (
            SELECT FROM tally.event_ids AS x
            WHERE
                x.counter_id = w.c AND x.event_id = w.e
                AND x.seen_on < (now() AT TIME ZONE 'UTC')::date
                AND x.seen_on >= (now() AT TIME ZONE 'UTC')::date
                - (SELECT s.event_window_days FROM tally.settings AS s)
        )
    ),

    claimed AS (
        INSERT INTO tally.event_ids (counter_id, event_id, seen_on)
        SELECT
            n.c,
            n.e,
            (now() AT TIME ZONE 'UTC')::date AS seen_on
        FROM unseen AS n
        ORDER BY n.c, n.e
        ON CONFLICT DO NOTHING
        RETURNING event_ids.counter_id, event_ids.event_id
    ),

    held_over AS (
        INSERT INTO tally.event_ids (counter_id, event_id, seen_on)
        SELECT
            k.counter_id,
            k.event_id,
            (now() AT TIME ZONE 'UTC')::date - 1 AS seen_on
        FROM claimed AS k
        WHERE tally._in_grace_hour()
        ORDER BY k.counter_id, k.event_id
        ON CONFLICT DO NOTHING
        RETURNING event_ids.counter_id, event_ids.event_id
    )

    SELECT
        k.counter_id,
        k.event_id
    FROM claimed AS k
    WHERE NOT tally._in_grace_hour() OR EXISTS (
        SELECT FROM held_over AS h
        WHERE h.counter_id = k.counter_id AND h.event_id = k.event_id
    );
END;
$$;

COMMENT ON FUNCTION tally._claim_events(integer[], text[]) IS
'Internal: claim (counter, event id) pairs not applied within the idempotency window; returns the claimed ones.';
