-- tally._sample_keys: up to p_sample keys of a counter chosen at random (the
-- hot keys are as likely as any); a drift check looks at these.
CREATE OR REPLACE FUNCTION tally._sample_keys(p_counter_id integer, p_sample integer)
RETURNS SETOF text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- (PL/pgSQL: on a distributed install Citus plans no parameterized SQL
    -- function that reads a distributed table.)
    RETURN QUERY
    SELECT t.key FROM tally.totals AS t
    WHERE t.counter_id = p_counter_id
    ORDER BY random()
    LIMIT p_sample;
END;
$$;

COMMENT ON FUNCTION tally._sample_keys(integer, integer) IS
'Internal: a random sample of a counter''s keys for drift checks.';
