-- Per-counter retention overrides (tally.set_retention); keep NULL = keep
-- forever. A granularity without a row here keeps its default
-- (tally.granularities.default_retention).
CREATE TABLE tally.retention (
    counter_id integer NOT NULL,
    granularity text NOT NULL,
    keep interval,
    CONSTRAINT retention_pkey PRIMARY KEY (counter_id, granularity),
    CONSTRAINT retention_counter_id_fkey FOREIGN KEY (counter_id) REFERENCES tally.counters (id) ON DELETE CASCADE,
    CONSTRAINT retention_granularity_fkey FOREIGN KEY (granularity) REFERENCES tally.granularities (name)
);

COMMENT ON TABLE tally.retention IS 'Per-counter retention overrides; keep NULL = keep forever';
