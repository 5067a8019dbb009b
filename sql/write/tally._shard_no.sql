-- tally._shard_no: the delta shard layout, defined here once. Deltas live in
-- tally.delta, list-partitioned by shard: two generations (writers append to
-- the active one, the compactor drains the other), and per generation four
-- UNLOGGED shards for fast counters and four logged ones for durable
-- counters; a slot picks one of the four (0-2 per worker, 3 for bulk
-- batches, tally._shard). tally.shards records, per partition, its shard
-- number and the (gen, durable, slot) it stands for; the migration that
-- filled those columns checked them against this function, and the
-- compactor selects shards by those columns, never by name. Inlined.
CREATE OR REPLACE FUNCTION tally._shard_no(p_gen smallint, p_durable boolean, p_slot integer)
RETURNS smallint
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
RETURN (p_gen * 8 + CASE WHEN p_durable THEN 4 ELSE 0 END + p_slot)::smallint;

COMMENT ON FUNCTION tally._shard_no(smallint, boolean, integer) IS
'Internal: the shard number of generation p_gen, durability p_durable and slot p_slot (the layout, once; inlined).';
