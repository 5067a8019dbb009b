-- tally.pending_deltas: what waits to be folded, per delta shard and
-- counter, as this node can see it: how many deltas and when the oldest was
-- written. On a hot standby only the logged shards are read (durable
-- counters, increments with an event id): fast counters' UNLOGGED shards
-- are not replicated, so their deltas are not listed there. The views
-- tally.compactor_lag, tally.counter_status and tally.health read it.
-- counter is NULL for deltas of a counter dropped meanwhile (the next fold
-- discards them).
CREATE OR REPLACE FUNCTION tally.pending_deltas()
RETURNS TABLE (shard smallint, counter text, deltas bigint, oldest_written_at timestamptz)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT pg_is_in_recovery() THEN
        RETURN QUERY
        SELECT p.shard, c.name::text, p.n, p.oldest
        FROM (
            SELECT d.shard, d.counter_id, count(*) AS n, min(d.written_at) AS oldest
            FROM tally.delta AS d
            GROUP BY d.shard, d.counter_id
        ) AS p
        LEFT JOIN tally.counters AS c ON p.counter_id = c.id;
    ELSE
        RETURN QUERY
        SELECT p.shard, c.name::text, p.n, p.oldest
        FROM (
            SELECT d.shard, d.counter_id, count(*) AS n, min(d.written_at) AS oldest
            FROM tally.delta AS d
            WHERE d.shard = ANY (tally._logged_shards())
            GROUP BY d.shard, d.counter_id
        ) AS p
        LEFT JOIN tally.counters AS c ON p.counter_id = c.id;
    END IF;
END;
$$;

COMMENT ON FUNCTION tally.pending_deltas() IS
'Deltas waiting to be folded per shard and counter, and the oldest''s write time, as this node sees them '
'(a hot standby: the logged shards only).';
