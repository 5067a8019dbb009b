-- tally.node_deadlocks: deadlocks PostgreSQL detected in this database on
-- each node, since that node's statistics were last reset: this server
-- alone ('local'; a distributed install: tally.node_deadlocks.citus.sql).
-- tally.deadlocks keeps the count since install.
CREATE OR REPLACE FUNCTION tally.node_deadlocks()
RETURNS TABLE (node text, deadlocks bigint, stats_reset timestamptz)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT
        'local'::text,
        d.deadlocks,
        d.stats_reset
    FROM pg_catalog.pg_stat_database AS d
    WHERE d.datname = current_database();
END;

COMMENT ON FUNCTION tally.node_deadlocks() IS
'Deadlocks detected in this database per node (every Citus node on a distributed install), since its statistics reset.';
