-- From when a counter's buckets of a granularity are complete: moved forward
-- when its retention changes (buckets skipped or dropped under the old
-- retention do not come back when it is lengthened), so drift checks compare
-- only what is complete.
CREATE TABLE tally.coverage (
    counter_id integer NOT NULL,
    granularity text NOT NULL,
    complete_from timestamptz NOT NULL,
    CONSTRAINT coverage_pkey PRIMARY KEY (counter_id, granularity),
    CONSTRAINT coverage_counter_id_fkey FOREIGN KEY (counter_id) REFERENCES tally.counters (id) ON DELETE CASCADE,
    CONSTRAINT coverage_granularity_fkey FOREIGN KEY (granularity) REFERENCES tally.granularities (name)
);
