-- tally._shard: the delta shard this backend appends to (tally._shard_no):
-- generation p_gen, the logged half for durable counters, and slot
-- pid % 3 (one of three per-worker slots) or 3 for bulk batches, so a
-- backfill never queues live increments. Inlined where it is used.
CREATE OR REPLACE FUNCTION tally._shard(p_gen smallint, p_durable boolean, p_bulk boolean)
RETURNS smallint
LANGUAGE sql
STABLE
PARALLEL RESTRICTED
RETURN tally._shard_no(p_gen, p_durable, CASE WHEN p_bulk THEN 3 ELSE pg_backend_pid() % 3 END);

COMMENT ON FUNCTION tally._shard(smallint, boolean, boolean) IS
'Internal: the delta shard of this backend for a generation, durability and batch size (inlined).';
