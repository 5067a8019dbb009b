-- tally.node_status: what this server is to tally, one row:
--   role              'primary', or 'standby' (a hot standby in recovery:
--                     reads only, fast counters' pending deltas not visible)
--   replayed_at       on a standby, when the last transaction it replayed
--                     committed on the primary (its reads are as of then)
--   streaming         on a standby, whether it receives WAL from a primary
--   standbys          on a primary, how many standbys stream from it
--   unrecorded_crash  on a primary, whether a crash reset (or a promotion)
--                     emptied the UNLOGGED tables and no compactor step has
--                     recorded it yet (tally.crash_reset_log); NULL on a
--                     standby, whose UNLOGGED tables cannot be read
-- tally.health reads it; `tally status` and `tally metrics` show it.
CREATE OR REPLACE FUNCTION tally.node_status()
RETURNS TABLE (role text, replayed_at timestamptz, streaming boolean, standbys integer, unrecorded_crash boolean)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_is_in_recovery() THEN
        RETURN QUERY
        SELECT 'standby'::text, pg_last_xact_replay_timestamp(),
               EXISTS (SELECT FROM pg_stat_wal_receiver AS r WHERE r.status = 'streaming'),
               NULL::integer, NULL::boolean;
        RETURN;
    END IF;
    -- fewer marker rows than an intact install has (a distributed install:
    -- one per shard, a worker's crash empties its own)
    RETURN QUERY
    SELECT 'primary'::text, NULL::timestamptz, NULL::boolean,
           (SELECT count(*)::integer FROM pg_stat_replication AS r),
           coalesce((SELECT count(*) < max(m.expected) FROM tally.crash_marker AS m), TRUE);
END;
$$;

COMMENT ON FUNCTION tally.node_status() IS
'This server to tally: primary or standby, replay time and streaming (standby), standbys (primary), '
'and whether a crash reset is not recorded yet.';
