-- The compactor's history: every fold, retry and failed step (outcome), and
-- every quarantine and failed maintenance part (mode), with the shard, the
-- deltas moved and how (TRUNCATE or DELETE), and the key slice it folded. tally.maintain() prunes runs
-- older than 7 days; tally.fold_stats keeps the cumulative counts.
CREATE TABLE tally.fold_runs (
    id bigint GENERATED ALWAYS AS IDENTITY,
    started_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    deltas bigint NOT NULL DEFAULT 0,
    attempts integer NOT NULL DEFAULT 1,
    outcome text NOT NULL,
    shard text,
    mode text,  -- noqa: RF04
    error text,
    slice smallint,
    slices smallint,
    CONSTRAINT fold_runs_pkey PRIMARY KEY (id),
    CONSTRAINT fold_runs_outcome_check CHECK (outcome IN ('ok', 'retried', 'failed')),
    CONSTRAINT fold_runs_mode_check CHECK (mode IN ('truncate', 'delete', 'quarantine', 'maintenance'))
);

CREATE INDEX fold_runs_started_at_idx ON tally.fold_runs (started_at);
