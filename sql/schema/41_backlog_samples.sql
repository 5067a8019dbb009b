-- The backlog over the last hour: how many deltas were pending, sampled by
-- the compactor at most every 10 s (tally.sample_backlog). tally.health
-- reads the trend: a backlog that keeps growing for minutes is a compactor
-- that folds less than writers add. On the coordinator only on Citus.
CREATE TABLE tally.backlog_samples (
    sampled_at timestamptz NOT NULL,
    pending bigint NOT NULL,
    CONSTRAINT backlog_samples_pkey PRIMARY KEY (sampled_at)
);

COMMENT ON TABLE tally.backlog_samples IS 'tally: pending deltas sampled by the compactor (the last hour)';
