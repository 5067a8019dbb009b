-- tally._replica_filter: for a read that builds its statement (EXECUTE), the
-- condition that keeps it off what this node cannot read: nothing on a
-- primary; on a hot standby ` AND <alias>.shard = ANY (tally._logged_shards())`,
-- so the UNLOGGED shards of fast counters (not replicated, unreadable
-- during recovery) are pruned at plan time and the read answers folded
-- values plus the logged pending deltas. Appended to the WHERE clause of
-- tally.delta aliased p_alias.
CREATE OR REPLACE FUNCTION tally._replica_filter(p_alias text)
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
RETURN CASE
    WHEN pg_catalog.pg_is_in_recovery() THEN pg_catalog.format(' AND %I.shard = ANY (tally._logged_shards())', p_alias)
    ELSE ''
END;

COMMENT ON FUNCTION tally._replica_filter(text) IS
'Internal: the WHERE condition that keeps a dynamic read of tally.delta to the logged shards on a hot standby.';
