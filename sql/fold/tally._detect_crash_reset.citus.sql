-- tally._detect_crash_reset on a distributed install (Citus): record each worker
-- whose crash reset emptied its shards of tally.crash_marker (UNLOGGED, as
-- are the fast delta shards beside them): one tally.crash_resets row per
-- such worker, with the node, its server start and the time before which
-- every acknowledged increment was folded (tally._folded_before: fast
-- increments acknowledged since, up to the worker's restart, and not folded
-- were lost there; durable ones and event-id increments are in logged
-- shards and survived). Then the markers are put back. Runs in the
-- compactor's steps, under the fold lock.
CREATE OR REPLACE FUNCTION tally._detect_crash_reset()
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name text;
    v_port integer;
    v_started timestamptz;
    v_found boolean := false;
    v_marker text := 'tally.crash_marker';
BEGIN
    FOR v_name, v_port, v_started IN EXECUTE format(
        'SELECT n.nodename, n.nodeport, (
                SELECT w.result::timestamptz
                FROM run_command_on_workers(''SELECT pg_postmaster_start_time()'') AS w
                WHERE w.nodename = n.nodename AND w.nodeport = n.nodeport AND w.success
            ) AS started_at
         FROM pg_dist_node AS n
         WHERE EXISTS (
             SELECT 1
             FROM pg_dist_shard AS s JOIN pg_dist_placement AS p ON p.shardid = s.shardid
             WHERE s.logicalrelid = %1$L::regclass AND p.groupid = n.groupid
               AND s.shardid NOT IN (SELECT m.shardid FROM %1$s AS m)
         )
         ORDER BY n.nodename, n.nodeport', v_marker)
    LOOP
        INSERT INTO tally.crash_resets (server_started_at, lost_since, lost_until, cause, node)
        SELECT coalesce(v_started, now()), least(tally._folded_before(w.folded_before), coalesce(v_started, now())),
               coalesce(v_started, now()), 'crash', format('%s:%s', v_name, v_port)
        FROM tally.write_gen AS w;
        v_found := true;
    END LOOP;
    IF v_found THEN
        PERFORM tally._mark_citus_shards();
    END IF;
    RETURN v_found;
END;
$$;

COMMENT ON FUNCTION tally._detect_crash_reset() IS
'Internal: record each worker whose crash reset emptied its fast shards (the window lost), then mark them again.';
