-- tally._coordinator_only on a distributed install (Citus): refuse an
-- administration call made on a worker, naming the coordinator. Citus syncs
-- its metadata to the workers, so a client may connect to any node:
-- increments, batches, event ids and every read work through any of them
-- (the per-key ones are sent to the key's worker), but the compactor's
-- bookkeeping lives on the coordinator, and so do the counters' sequence
-- and the crash log. (Citus's catalogs are named in dynamic statements: the
-- code is also checked on installs without Citus.)
CREATE OR REPLACE FUNCTION tally._coordinator_only(p_fn text)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_group integer;
    v_coordinator text;
    v_local_group text := 'pg_dist_local_group';
    v_nodes text := 'pg_dist_node';
BEGIN
    EXECUTE format('SELECT groupid FROM %s', v_local_group) INTO v_group;
    IF v_group IS DISTINCT FROM 0 THEN
        EXECUTE format('SELECT format(''%%s:%%s'', n.nodename, n.nodeport) FROM %s AS n WHERE n.groupid = 0', v_nodes)
        INTO v_coordinator;
        RAISE EXCEPTION '%: an administration call, run on the coordinator, not on this worker', p_fn
            USING ERRCODE = 'feature_not_supported',
                  HINT = format('connect to the coordinator (%s) and call it there; increments and reads work '
                                'through any node', coalesce(v_coordinator, 'see pg_dist_node, group 0'));
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._coordinator_only(text) IS
'Internal: refuse an administration call on a Citus worker (on one node: nothing to refuse).';
