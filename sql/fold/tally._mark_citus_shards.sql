-- tally._mark_citus_shards: on a distributed install, put a crash marker row in
-- every shard of tally.crash_marker that has none (at install, and after a
-- worker's crash reset emptied some). The marker's key is one that Citus
-- hashes to that shard; the row names the shard, and how many markers an
-- intact install has. (Citus's catalogs are named in dynamic statements:
-- on a single node they do not exist.)
CREATE OR REPLACE FUNCTION tally._mark_citus_shards()
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_shards integer;
    v_marked integer;
    v_marker text := 'tally.crash_marker';
BEGIN
    EXECUTE format('SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = %L::regclass', v_marker)
    INTO v_shards;
    EXECUTE format(
        'INSERT INTO %1$s (key, shardid, expected)
         SELECT DISTINCT ON (m.shardid) m.key, m.shardid, $1
         FROM (SELECT ''crash-marker-'' || g AS key,
                      get_shard_id_for_distribution_column(%1$L, ''crash-marker-'' || g) AS shardid
               FROM generate_series(1, 64 * $1) AS g) AS m
         WHERE m.shardid NOT IN (SELECT c.shardid FROM %1$s AS c)
         ORDER BY m.shardid, m.key
         ON CONFLICT DO NOTHING', v_marker)
    USING v_shards;
    GET DIAGNOSTICS v_marked = ROW_COUNT;
    RETURN v_marked;
END;
$$;

COMMENT ON FUNCTION tally._mark_citus_shards() IS
'Internal: on a distributed install, a crash marker row in every shard that has none; returns how many were put.';
