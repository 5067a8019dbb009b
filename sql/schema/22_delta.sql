-- Not-yet-folded increments, appended by increment_counter(): one row per
-- increment, no shared row updated. List-partitioned by shard = gen * 8 +
-- (durable ? 4 : 0) + slot (tally._shard_no): two generations (writers
-- append to the active one, the compactor drains and TRUNCATEs the other),
-- and per generation 4 UNLOGGED shards for fast counters and 4 logged
-- shards for durable counters; slot is pid % 3 for increments and small
-- batches, 3 for bulk batches (over 1,000 increments), so a backfill never
-- queues live increments. Revision 0001 creates the 16 partitions.
CREATE TABLE tally.delta (
    shard smallint NOT NULL,
    counter_id integer NOT NULL,
    key text NOT NULL,  -- noqa: RF04
    delta bigint NOT NULL,
    at timestamptz NOT NULL,  -- noqa: RF04
    written_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY LIST (shard);

-- Reads add a key's pending deltas: one probe per shard.
CREATE INDEX delta_counter_key_idx ON tally.delta (counter_id, key);

COMMENT ON TABLE tally.delta IS 'Not-yet-folded increments, appended by increment_counter()';
