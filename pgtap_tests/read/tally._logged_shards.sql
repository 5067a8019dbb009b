-- tally._logged_shards and tally._replica_filter: what a hot standby reads
-- of tally.delta. The logged shards are exactly the durable ones of the
-- layout, and a filter on them prunes the UNLOGGED partitions at plan time
-- (a standby cannot open them), in a generic plan too. On a primary the
-- filter is empty.
BEGIN;
SELECT plan(5);

SELECT is(
    tally._logged_shards(),
    (SELECT array_agg(s.shard ORDER BY s.shard) FROM tally.shards AS s WHERE s.durable),
    'the logged shards are the durable ones'
);
SELECT is(
    (SELECT array_agg(s.shard ORDER BY s.shard) FROM tally.shards AS s
     WHERE s.shard_table::regclass IN (SELECT c.oid FROM pg_catalog.pg_class AS c WHERE c.relpersistence = 'p')),
    tally._logged_shards(),
    'and exactly the shards whose tables are logged'
);
SELECT is(tally._replica_filter('d'), '', 'on a primary the filter is empty');

PREPARE logged_only (integer, text) AS
SELECT sum(d.delta) FROM tally.delta AS d
WHERE d.shard = ANY (tally._logged_shards()) AND d.counter_id = $1 AND d.key = $2;
SET LOCAL plan_cache_mode = force_generic_plan;
CREATE FUNCTION pg_temp.plan_text() RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_line text; v_all text := '';
BEGIN
    FOR v_line IN EXECUTE 'EXPLAIN EXECUTE logged_only(1, ''k'')' LOOP v_all := v_all || v_line || E'\n'; END LOOP;
    RETURN v_all;
END $$;
SELECT unalike(pg_temp.plan_text(), '%fast%', 'the generic plan names no UNLOGGED (fast) shard');
SELECT alike(pg_temp.plan_text(), '%durable%', 'and reads the logged ones');

SELECT * FROM finish();
ROLLBACK;
