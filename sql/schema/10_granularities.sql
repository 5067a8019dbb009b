-- sql/schema/: the tables of schema tally as they stand after `alembic
-- upgrade head`, one table per file, named after it; executed in name order
-- into an empty schema tally they make exactly those tables (columns,
-- defaults, identities, constraints with their catalog names, indexes,
-- UNLOGGED, partition keys, storage options, comments), which
-- python_client/tests/test_schema_files.py checks against a migrated
-- database. The numbers follow the data flow (10 counters, 20 write, 30 fold,
-- 50 retention, 60 drift, 70 ops) and put a referenced table first.
--
-- The numbered revisions in migrations/versions/ make the state: a change to
-- a table is a new revision and the same change here. They also make what
-- these files leave out:
-- * partitions. tally.delta's 16 list partitions tally.delta_g<gen>_<fast|
--   durable>_<slot> (the fast ones UNLOGGED, all with autovacuum options)
--   come from revision 0001. The rollup tables' range partitions come from
--   pg_partman, which copies fillfactor and autovacuum options from its
--   template tables partman.template_tally_rollup_<g> (a partitioned parent
--   holds no storage options). tally.event_ids' day partitions come from
--   tally._event_partitions().
-- * rows: the granularities below, the one-row tables, the shard layout in
--   tally.shards, the install records.
-- * tally.alembic_version, which alembic owns.

-- The granularities a counter can keep, finest first (ord): the pg_partman
-- partition interval of each one's rollup table (minute: a day, hour: a
-- month, day, week and month: a year) and its default retention (minute 7
-- days, hour 90 days; NULL keeps forever). Revision 0001 inserts the five
-- rows.
CREATE TABLE tally.granularities (
    name text NOT NULL,  -- noqa: RF04
    ord smallint NOT NULL,
    partition_interval interval NOT NULL,
    default_retention interval,
    CONSTRAINT granularities_pkey PRIMARY KEY (name),
    CONSTRAINT granularities_ord_key UNIQUE (ord)
);
