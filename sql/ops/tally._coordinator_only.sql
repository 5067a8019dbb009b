-- tally._coordinator_only: where an administration call must run. On one
-- node, anywhere: nothing to check. (A distributed install refuses it on a
-- worker: tally._coordinator_only.citus.sql.) Called first by the
-- administration functions that write the coordinator's bookkeeping or use
-- its sequences: create_counter, maintain, compact_step (so compact and
-- compact_loop), acknowledge_crash, release_quarantined.
CREATE OR REPLACE FUNCTION tally._coordinator_only(p_fn text)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- a single node is its own coordinator
END;
$$;

COMMENT ON FUNCTION tally._coordinator_only(text) IS
'Internal: refuse an administration call on a Citus worker (on one node: nothing to refuse).';
