-- tally._keep: how long counter p_counter_id keeps p_granularity buckets:
-- its override in tally.retention, else the granularity's default. NULL
-- means forever.
CREATE OR REPLACE FUNCTION tally._keep(p_counter_id integer, p_granularity text)
RETURNS interval
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT CASE WHEN r.counter_id IS NOT NULL THEN r.keep ELSE g.default_retention END
    FROM tally.granularities AS g
    LEFT JOIN tally.retention AS r ON r.counter_id = _keep.p_counter_id AND g.name = r.granularity  -- noqa: RF01
    WHERE g.name = _keep.p_granularity;  -- noqa: RF01
END;

COMMENT ON FUNCTION tally._keep(integer, text) IS
'Internal: effective retention of a counter''s buckets of one granularity (NULL: forever).';
