-- sql/schema/: the tables of schema tally as they stand after `alembic
-- upgrade head`, one table per file, named after it. Executed in name order
-- into an empty schema tally, the files make exactly those tables (columns,
-- defaults, identities, constraints with their catalog names, indexes,
-- UNLOGGED, partition keys, storage options, comments):
-- python_client/tests/test_schema_files.py checks them against a migrated
-- database. The numbers follow the stages of sql/index.sql (10 counters,
-- 20 write, 30 fold, 50 retention, 60 drift, 70 ops; read keeps no table) and
-- put a referenced table before the tables that refer to it. A column named
-- like a keyword (name, key, at, ...) carries `-- noqa: RF04`: the names are
-- the catalog's.
--
-- The numbered revisions in migrations/versions/ make the state: a change to
-- a table is a new revision and the same change here. They also make what
-- these files leave out:
-- * partitions. Revision 0001 creates tally.delta's 16 list partitions,
--   tally.delta_g0_fast_0 to tally.delta_g1_durable_3 (the fast ones
--   UNLOGGED, all with autovacuum options). pg_partman creates the rollup
--   tables' range partitions and copies fillfactor and autovacuum options to
--   them from its template tables, partman.template_tally_rollup_<g> (a
--   partitioned parent holds no storage options). tally._event_partitions()
--   creates tally.event_ids' partitions.
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
