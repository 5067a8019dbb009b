-- tally.acknowledge_crash: an operator has reviewed the crash resets
-- recorded so far (tally.crash_resets: when, and from when fast increments
-- were lost) and clears them from tally.health's 'crash' check, which
-- otherwise stays critical for 24 hours. Returns how many it acknowledged.
-- A crash not recorded yet (the marker vanished, no compactor ran since) is
-- not acknowledged: it stays critical until recorded and acknowledged.
CREATE OR REPLACE FUNCTION tally.acknowledge_crash()
RETURNS integer
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH acked AS (
        UPDATE tally.crash_resets AS cr
        SET acknowledged_at = now(), acknowledged_by = session_user
        WHERE cr.acknowledged_at IS NULL
        RETURNING cr.id
    )

    SELECT count(*)::integer FROM acked;
END;

COMMENT ON FUNCTION tally.acknowledge_crash() IS
'Acknowledge the recorded crash resets (reviewed): tally.health''s crash check stops reporting them.';
