-- tally._append_claimed: the event-id part of tally.increment_counters, on
-- one node. Of each (counter, event id) of the batch the first element, if
-- its id is claimed now (tally._claim_events, all at once, sorted), is
-- appended to the logged shards of the active generation (slot 3 for a
-- bulk batch). Returns how many were appended and how many elements name
-- a counter that exists (fewer than the batch: one was dropped while it was
-- written, and the caller refuses the whole batch). Runs in the caller's
-- statement snapshot: the elements, the claims and the rows, one statement.
-- (A distributed install: tally._append_claimed.citus.sql.)
CREATE OR REPLACE FUNCTION tally._append_claimed(
    p_counters text[], p_keys text[], p_deltas bigint[], p_ats timestamptz[], p_event_ids text[], p_bulk boolean
)
RETURNS TABLE (appended bigint, known bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    WITH elem AS (
        SELECT u.i, u.k, u.d, u.t, u.e, c.id AS counter_id
        FROM unnest(p_counters, p_keys, p_deltas, p_ats, p_event_ids) WITH ORDINALITY AS u (n, k, d, t, e, i)
        JOIN tally.counters AS c ON c.name = u.n
    ),
    claimed AS MATERIALIZED (
        SELECT ce.counter_id, ce.event_id
        FROM tally._claim_events(
            (SELECT array_agg(x.counter_id) FROM elem AS x), (SELECT array_agg(x.e) FROM elem AS x)
        ) AS ce
    ),
    firsts AS (
        SELECT DISTINCT ON (x.counter_id, x.e) x.*
        FROM elem AS x
        ORDER BY x.counter_id, x.e, x.i
    ),
    inserted AS (
        INSERT INTO tally.delta (shard, counter_id, key, delta, at)
        SELECT tally._shard(w.gen, true, p_bulk), f.counter_id, f.k, f.d, coalesce(f.t, now())
        FROM firsts AS f
        JOIN claimed AS cl ON cl.counter_id = f.counter_id AND cl.event_id = f.e
        CROSS JOIN tally.write_gen AS w
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM elem);
END;
$$;

COMMENT ON FUNCTION tally._append_claimed(text[], text[], bigint[], timestamptz[], text[], boolean) IS
'Internal: append the elements of a batch whose (counter, event id) is claimed now; (appended, known elements).';
