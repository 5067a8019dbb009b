-- tally._make_append_local: on a single-node install there is no local
-- shard to write into (tally._append_local keeps its default body and is
-- never called): nothing to make. The Citus body is
-- tally._make_append_local.citus.sql.
CREATE OR REPLACE FUNCTION tally._make_append_local(p_everywhere boolean DEFAULT FALSE)
RETURNS SETOF text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN;
END;
$$;

COMMENT ON FUNCTION tally._make_append_local(boolean) IS
'Internal: write this node''s body of tally._append_local from its delta shards (every node with p_everywhere); '
'one line per node written or checked. Nothing on a single-node install.';
