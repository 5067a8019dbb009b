-- tally._claim_days: the days (partitions of tally.event_ids) a claim of an
-- event id is written to:
--   * the UTC day the transaction began (now()),
--   * the UTC day of the current statement, when the transaction began the
--     day before: a claim made after midnight meets the claims of
--     transactions that began after midnight;
--   * for each day boundary in the window that a still-running transaction
--     may predate (its boundary xid in tally.event_days is unknown or not
--     older than this snapshot's xmin), the day before it: the partition
--     such an old transaction claims in.
-- Normally that is one day; near a midnight, or while a transaction older
-- than a day boundary runs, two or more.
CREATE OR REPLACE FUNCTION tally._claim_days()
RETURNS SETOF date
LANGUAGE sql
STABLE
BEGIN ATOMIC
    SELECT (now() AT TIME ZONE 'UTC')::date AS d
    UNION
    SELECT (statement_timestamp() AT TIME ZONE 'UTC')::date AS d
    UNION
    SELECT (g.boundary - interval '1 day')::date AS d
    FROM
        generate_series(
            ((now() AT TIME ZONE 'UTC')::date - (SELECT s.event_window_days FROM tally.settings AS s) + 1)::timestamp,
            (statement_timestamp() AT TIME ZONE 'UTC')::date::timestamp,
            interval '1 day'
        ) AS g (boundary)
    WHERE NOT EXISTS (
        SELECT FROM tally.event_days AS e
        WHERE e.day = g.boundary::date AND e.first_xid <= pg_snapshot_xmin(pg_current_snapshot())
    );
END;

COMMENT ON FUNCTION tally._claim_days() IS
'Internal: the days of tally.event_ids a claim of an event id is written to (see tally._claim_events).';
