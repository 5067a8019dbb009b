-- The deadlock baseline taken at install (one row, revision 0001 inserts
-- it): tally.deadlocks and tally.health compare pg_stat_database against it.
CREATE TABLE tally.install_baseline (
    singleton boolean NOT NULL DEFAULT TRUE,
    installed_at timestamptz NOT NULL DEFAULT now(),
    deadlocks bigint NOT NULL,
    stats_reset timestamptz,
    CONSTRAINT install_baseline_pkey PRIMARY KEY (singleton),
    CONSTRAINT install_baseline_singleton_check CHECK (singleton)
);
