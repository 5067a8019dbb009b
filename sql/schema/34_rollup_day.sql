-- The value per (counter, key, day bucket), buckets in UTC
-- (date_trunc('day', at, 'UTC')). Range-partitioned on bucket by
-- pg_partman, yearly partitions, no default partition: a bucket outside the
-- premade range gets its partition created by the fold. Rows are updated in
-- place by every fold: the partitions have fillfactor 70 and early
-- autovacuum (from pg_partman's template table; value is in no index, so
-- updates are HOT).
CREATE TABLE tally.rollup_day (
    counter_id integer NOT NULL,
    key text NOT NULL,  -- noqa: RF04
    bucket timestamptz NOT NULL,
    value bigint NOT NULL,  -- noqa: RF04
    CONSTRAINT rollup_day_pkey PRIMARY KEY (counter_id, key, bucket)
) PARTITION BY RANGE (bucket);

-- top_keys: every key of one bucket of a counter.
CREATE INDEX rollup_day_bucket_idx ON tally.rollup_day (counter_id, bucket);
