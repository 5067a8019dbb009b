-- Per delta shard and key slice (slice of slices, tally._slice): where the
-- slice's last chunk stopped, and the last transaction that deleted deltas
-- of the slice from the shard. Slice folds write only their own row, so
-- folds of different slices never wait on each other here; the reclaim
-- truncates a shard only once every such transaction is invisible to all.
CREATE TABLE tally.shard_slices (
    shard_table regclass NOT NULL,
    slices smallint NOT NULL,
    slice smallint NOT NULL,  -- noqa: RF04
    resume_at tid NOT NULL DEFAULT '(0,0)',
    deleted_xid xid8 NOT NULL,
    CONSTRAINT shard_slices_pkey PRIMARY KEY (shard_table, slices, slice),
    CONSTRAINT shard_slices_shard_table_fkey FOREIGN KEY (shard_table)
    REFERENCES tally.shards (shard_table) ON DELETE CASCADE,
    CONSTRAINT shard_slices_slices_check CHECK (slices BETWEEN 2 AND 64),
    CONSTRAINT shard_slices_check CHECK (slice >= 0 AND slice < slices)
);
