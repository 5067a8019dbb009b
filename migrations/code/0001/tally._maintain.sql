-- tally._maintain: pg_partman maintenance of the rollup tables (premake
-- partitions ahead, drop partitions past retention) and pruning of old
-- tally.fold_runs rows. Takes the fold lock first (so it never waits on a
-- fold's rows nor a fold on it), and a 200 ms lock_timeout per table: a
-- table it cannot lock at once is skipped until the next run instead of
-- queueing readers and writers behind it. Returns what it did.
CREATE OR REPLACE FUNCTION tally._maintain()
RETURNS TABLE (step text, detail text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET lock_timeout = '200ms'
AS $$
DECLARE
    v_parent text;
    v_before bigint;
    v_after bigint;
    v_pruned bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(tally._fold_lock_key());
    PERFORM tally._sync_retention();
    FOR v_parent IN
        SELECT pc.parent_table FROM partman.part_config AS pc
        WHERE pc.parent_table LIKE 'tally.rollup\_%' ORDER BY pc.parent_table
    LOOP
        v_before := (SELECT count(*) FROM pg_catalog.pg_inherits AS i WHERE i.inhparent = v_parent::regclass);
        BEGIN
            PERFORM partman.run_maintenance(p_parent_table => v_parent, p_analyze => false, p_jobmon => false);
            v_after := (SELECT count(*) FROM pg_catalog.pg_inherits AS i WHERE i.inhparent = v_parent::regclass);
            step := 'partitions';
            detail := format('%s: %s partitions (%s)', v_parent, v_after,
                             CASE WHEN v_after = v_before THEN 'unchanged'
                                  ELSE to_char(v_after - v_before, 'FMSG999999') END);
        EXCEPTION WHEN lock_not_available THEN
            step := 'skipped';
            detail := format('%s: could not lock it within 200 ms; next run', v_parent);
        END;
        RETURN NEXT;
    END LOOP;
    DELETE FROM tally.fold_runs AS r WHERE r.started_at < now() - interval '7 days';
    GET DIAGNOSTICS v_pruned = ROW_COUNT;
    step := 'fold_runs';
    detail := format('%s rows older than 7 days pruned', v_pruned);
    RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION tally._maintain() IS
'Internal: pg_partman maintenance of the rollups (premake, retention) under the fold lock with a short lock_timeout.';
