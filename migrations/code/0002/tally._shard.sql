-- tally._shard: the delta shard this backend appends to: generation p_gen,
-- the logged half for durable counters, and slot pid % 3 (per worker) or 3
-- for bulk batches. Matches the partitions created by the migration; inlined
-- where it is used.
CREATE OR REPLACE FUNCTION tally._shard(p_gen smallint, p_durable boolean, p_bulk boolean)
RETURNS smallint
LANGUAGE sql
STABLE
PARALLEL RESTRICTED
RETURN (
    p_gen * 8 + CASE WHEN p_durable THEN 4 ELSE 0 END
    + CASE WHEN p_bulk THEN 3 ELSE pg_backend_pid() % 3 END
)::smallint;

COMMENT ON FUNCTION tally._shard(smallint, boolean, boolean) IS
'Internal: the delta shard of this backend for a generation, durability and batch size (inlined).';
