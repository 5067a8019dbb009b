-- tally._logged_shards: the delta shards that are logged (those of durable
-- counters, which also hold every increment with an event id), from the
-- layout (tally._shard_no). A hot standby replays only these: the UNLOGGED
-- shards of fast counters are not replicated, and a statement that names
-- one fails there. A read on a standby filters tally.delta by
-- `shard = ANY (tally._logged_shards())`: the planner evaluates this
-- IMMUTABLE call once and prunes the UNLOGGED partitions before it opens
-- them (a generic plan too).
CREATE OR REPLACE FUNCTION tally._logged_shards()
RETURNS smallint[]
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
BEGIN ATOMIC
    SELECT array_agg(tally._shard_no(g.gen::smallint, TRUE, s.slot) ORDER BY g.gen, s.slot)
    FROM generate_series(0, 1) AS g (gen) CROSS JOIN generate_series(0, 3) AS s (slot);
END;

COMMENT ON FUNCTION tally._logged_shards() IS
'Internal: the logged delta shards (durable counters, event-id increments): all a hot standby can read.';
