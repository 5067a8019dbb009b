-- The value per (counter, key, week bucket), buckets in UTC
-- (date_trunc('week', at, 'UTC'): the ISO week, starting Monday).
-- Range-partitioned on bucket by pg_partman, yearly partitions, no default
-- partition: a bucket outside the premade range gets its partition created
-- by the fold. Rows are updated in place by every fold: the partitions have
-- fillfactor 70 and early autovacuum (from pg_partman's template table;
-- value is in no index, so updates are HOT).
CREATE TABLE tally.rollup_week (
    counter_id integer NOT NULL,
    key text NOT NULL,  -- noqa: RF04
    bucket timestamptz NOT NULL,
    value bigint NOT NULL,  -- noqa: RF04
    CONSTRAINT rollup_week_pkey PRIMARY KEY (counter_id, key, bucket)
) PARTITION BY RANGE (bucket);

-- top_keys: every key of one bucket of a counter.
CREATE INDEX rollup_week_bucket_idx ON tally.rollup_week (counter_id, bucket);
