-- tally._detect_crash_reset: a crash (not a clean shutdown) empties every
-- UNLOGGED table, the one-row tally.crash_marker with them. When the marker
-- is gone, record the reset in tally.crash_resets with the window whose
-- fast deltas were lost (since the last fold that moved deltas before the
-- server started) and put the marker back. Run by every compactor call;
-- cheap (one primary-key probe). Returns true when it recorded a reset.
CREATE OR REPLACE FUNCTION tally._detect_crash_reset()
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF tally._distributed() THEN
        RETURN tally._detect_worker_crash();
    END IF;
    IF EXISTS (SELECT FROM tally.crash_marker) THEN
        RETURN false;
    END IF;
    INSERT INTO tally.crash_marker DEFAULT VALUES ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;  -- another session recorded it
    END IF;
    INSERT INTO tally.crash_resets (server_started_at, lost_since)
    SELECT pg_postmaster_start_time(), max(r.finished_at)
    FROM tally.fold_runs AS r
    WHERE r.outcome = 'ok' AND r.deltas > 0 AND r.finished_at < pg_postmaster_start_time();
    RETURN true;
END;
$$;

COMMENT ON FUNCTION tally._detect_crash_reset() IS
'Internal: record a crash reset (the UNLOGGED marker row vanished) and the window of fast deltas it lost.';
