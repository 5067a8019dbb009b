-- tally._claim_bounds: what a claim of event ids needs to know, in one
-- statement: the partitions (first days, ascending, from tally.event_days)
-- it writes to,
--   * the one of the UTC day the transaction began (now()),
--   * the one of the UTC day of the current statement, when the transaction
--     began in the partition before: a claim made after the boundary meets
--     the claims of transactions that began after it;
--   * for each partition boundary in the window that a still-running
--     transaction may predate (its first xid in tally.event_days is unknown
--     or not older than this snapshot's xmin), the partition before it: the
--     one such an old transaction claims in
-- (normally one; near a boundary, or while a transaction older than a
-- boundary runs, two or more; none if no partition begins on or before
-- today: the claim then refuses), and the first day of the oldest partition the window reaches into (the
-- lookup probes from there up to the last of those partitions; -infinity
-- if every partition is inside the window). PL/pgSQL, so that the plan of
-- its statement is kept for the session (a SQL function's is made again on
-- every call).
CREATE OR REPLACE FUNCTION tally._claim_bounds(OUT days date[], OUT window_from date)
RETURNS record
LANGUAGE plpgsql
STABLE
AS $$
BEGIN
    -- One pass over the partitions (a few rows), each beside the one
    -- before it and after it.
    SELECT
        array_agg(DISTINCT v.d ORDER BY v.d) FILTER (WHERE v.d IS NOT NULL),
        coalesce(max(p.day) FILTER (WHERE p.day <= p.window_start), '-infinity'::date)
    FROM (
        SELECT
            e.day,
            e.first_xid,
            lag(e.day) OVER w AS prev,
            lead(e.day) OVER w AS next,
            (now() AT TIME ZONE 'UTC')::date AS began,
            (statement_timestamp() AT TIME ZONE 'UTC')::date AS stmt,
            (now() AT TIME ZONE 'UTC')::date - (SELECT s.event_window_days FROM tally.settings AS s) AS window_start
        FROM tally.event_days AS e
        WINDOW w AS (ORDER BY e.day)
    ) AS p
    CROSS JOIN LATERAL (
        VALUES
        -- the partition of the day the transaction began
        (CASE WHEN p.day <= p.began AND (p.next IS NULL OR p.next > p.began) THEN p.day END),
        -- the partition of this statement's day
        (CASE WHEN p.day <= p.stmt AND (p.next IS NULL OR p.next > p.stmt) THEN p.day END),
        -- the partition before a boundary a running transaction may predate
        (
            CASE
                WHEN
                    p.day > p.window_start AND p.day <= p.stmt
                    AND NOT coalesce(p.first_xid <= pg_snapshot_xmin(pg_current_snapshot()), FALSE)
                    THEN p.prev
            END
        )
    ) AS v (d)
    INTO days, window_from;
    days := coalesce(days, ARRAY[]::date[]);
END;
$$;

COMMENT ON FUNCTION tally._claim_bounds() IS
'Internal: the partitions a claim of event ids writes to, and where its lookup starts (see tally._claim_events).';
