-- tally._detect_crash_reset: a crash (not a clean shutdown) empties every
-- UNLOGGED table, the one-row tally.crash_marker with them; so does a
-- promotion (a standby never holds UNLOGGED data: a promoted standby starts
-- with them empty). When the marker is gone, record the reset in
-- tally.crash_resets and put the marker back. The fast increments lost are
-- those acknowledged and not folded into what this server holds: from the
-- last point before which every acknowledged increment is folded (the older
-- of the two generations' tally.write_gen.folded_before, as this server has
-- it: after a promotion, as replicated) up to the crash (this server's
-- start) or the promotion (tally._promoted_at). Run by every compactor
-- step; cheap (one primary-key probe). Returns true when it recorded one.
-- (A distributed install: tally._detect_crash_reset.citus.sql, per worker.)
CREATE OR REPLACE FUNCTION tally._detect_crash_reset()
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_started timestamptz := pg_postmaster_start_time();
    v_promoted timestamptz;
BEGIN
    IF EXISTS (SELECT FROM tally.crash_marker) THEN
        RETURN false;
    END IF;
    INSERT INTO tally.crash_marker DEFAULT VALUES ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;  -- another session recorded it
    END IF;
    v_promoted := tally._promoted_at();
    INSERT INTO tally.crash_resets (server_started_at, lost_since, lost_until, cause)
    SELECT v_started, tally._folded_before(w.folded_before), greatest(v_started, v_promoted),
           CASE WHEN v_promoted IS NULL THEN 'crash' ELSE 'promotion' END
    FROM tally.write_gen AS w;
    RETURN true;
END;
$$;

COMMENT ON FUNCTION tally._detect_crash_reset() IS
'Internal: record a crash reset or promotion (the UNLOGGED marker row vanished) and the window of fast increments lost.';
