-- tally._sync_retention: set pg_partman's retention of each rollup table to
-- the longest retention any counter keeping that granularity has (NULL, no
-- dropping, if one keeps it forever; the granularity's default when no
-- counter keeps it): pg_partman drops a partition only when no counter still
-- keeps any bucket in it.
CREATE OR REPLACE FUNCTION tally._sync_retention()
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE partman.part_config AS pc
    SET retention = k.keep::text
    FROM (
        SELECT g.name,
               CASE WHEN count(c.id) = 0 THEN g.default_retention
                    WHEN bool_or(tally._keep(c.id, g.name) IS NULL) THEN NULL
                    ELSE max(tally._keep(c.id, g.name))
               END AS keep
        FROM tally.granularities AS g
        LEFT JOIN tally.counters AS c ON g.name = ANY (c.granularities)
        GROUP BY g.name, g.default_retention
    ) AS k
    WHERE pc.parent_table = 'tally.rollup_' || k.name
      AND pc.retention IS DISTINCT FROM k.keep::text;
END;
$$;

COMMENT ON FUNCTION tally._sync_retention() IS
'Internal: set pg_partman retention per rollup table to the longest retention of its counters.';
