-- tally.node_deadlocks on a distributed install (Citus): one row per node,
-- the coordinator and every worker (Citus runs the query on each; a
-- distributed deadlock that spans workers is broken by Citus's own detector
-- and shows as an error in the transaction it cancels). tally.deadlocks
-- keeps the coordinator's count since install.
CREATE OR REPLACE FUNCTION tally.node_deadlocks()
RETURNS TABLE (node text, deadlocks bigint, stats_reset timestamptz)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_query text := 'SELECT deadlocks || ''/'' || coalesce(stats_reset::text, '''')'
                    ' FROM pg_stat_database WHERE datname = current_database()';
BEGIN
    -- (Citus's function, named in a dynamic statement: the code is also
    -- checked on installs without Citus.)
    RETURN QUERY EXECUTE format(
        'SELECT format(''%%s:%%s'', n.nodename, n.nodeport), split_part(r.result, ''/'', 1)::bigint,
                nullif(split_part(r.result, ''/'', 2), '''')::timestamptz
         FROM run_command_on_all_nodes(%L) AS r
         JOIN pg_dist_node AS n ON n.nodeid = r.nodeid
         ORDER BY n.groupid, n.nodename, n.nodeport', v_query);
END;
$$;

COMMENT ON FUNCTION tally.node_deadlocks() IS
'Deadlocks detected in this database per node (every Citus node on a distributed install), since its statistics reset.';
