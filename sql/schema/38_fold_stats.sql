-- Cumulative fold failure counts, which outlive the pruning of
-- tally.fold_runs (one row, revision 0001 inserts it).
CREATE TABLE tally.fold_stats (
    singleton boolean NOT NULL DEFAULT TRUE,
    retried_deadlocks bigint NOT NULL DEFAULT 0,
    retried_other bigint NOT NULL DEFAULT 0,
    abandoned bigint NOT NULL DEFAULT 0,
    CONSTRAINT fold_stats_pkey PRIMARY KEY (singleton),
    CONSTRAINT fold_stats_singleton_check CHECK (singleton)
);
