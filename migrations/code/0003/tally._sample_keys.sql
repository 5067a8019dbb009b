-- tally._sample_keys: up to p_sample keys of a counter chosen at random (the
-- hot keys are as likely as any); a drift check looks at these.
CREATE OR REPLACE FUNCTION tally._sample_keys(p_counter_id integer, p_sample integer)
RETURNS SETOF text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT t.key FROM tally.totals AS t
    WHERE t.counter_id = _sample_keys.p_counter_id  -- noqa: RF01
    ORDER BY random()
    LIMIT _sample_keys.p_sample;  -- noqa: RF01
END;

COMMENT ON FUNCTION tally._sample_keys(integer, integer) IS
'Internal: a random sample of a counter''s keys for drift checks.';
