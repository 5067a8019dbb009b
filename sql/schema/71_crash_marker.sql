-- A crash empties UNLOGGED tables: this one-row marker disappears with them
-- (and with the fast shards), which is how a crash reset (lost fast deltas)
-- is detected (tally._detect_crash_reset puts it back). expected: how many
-- marker rows an intact install has; a distributed install has one per
-- shard (its columns there: key, shardid, expected; tally._mark_citus_shards).
CREATE UNLOGGED TABLE tally.crash_marker (
    singleton boolean NOT NULL DEFAULT TRUE,
    expected integer NOT NULL DEFAULT 1,
    CONSTRAINT crash_marker_pkey PRIMARY KEY (singleton),
    CONSTRAINT crash_marker_singleton_check CHECK (singleton)
);
