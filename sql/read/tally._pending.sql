-- tally._pending: how many deltas are waiting to be folded. Pending deltas
-- are bounded by the compactor, never the history: this scans no event log.
CREATE OR REPLACE FUNCTION tally._pending()
RETURNS bigint
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT count(*) FROM tally.delta;
END;

COMMENT ON FUNCTION tally._pending() IS
'Internal: number of deltas not folded yet.';
