-- One row per delta shard (partition of tally.delta): its layout, once
-- (shard = tally._shard_no(gen, durable, slot); UNLOGGED exactly when not
-- durable), and the transaction that last drained it. Once every snapshot in
-- the cluster is newer than that, the shard's dead rows are invisible to all
-- and the shard can be TRUNCATEd without anyone noticing. resume_at is where
-- the next fold chunk of a backlog starts (a TID range scan). The compactor
-- selects shards by these columns, not by name.
CREATE TABLE tally.shards (
    shard_table regclass NOT NULL,
    drained_xid xid8,
    drained_at timestamptz,
    resume_at tid NOT NULL DEFAULT '(0,0)',
    truncated_at timestamptz,
    shard smallint NOT NULL,
    gen smallint NOT NULL,
    durable boolean NOT NULL,
    slot smallint NOT NULL,
    CONSTRAINT shards_pkey PRIMARY KEY (shard_table),
    CONSTRAINT shards_shard_key UNIQUE (shard),
    CONSTRAINT shards_layout_key UNIQUE (gen, durable, slot)
);
