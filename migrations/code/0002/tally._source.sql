-- tally._source: the registered source of truth of a counter, for the
-- drift functions that run as their caller.
CREATE OR REPLACE FUNCTION tally._source(p_counter_id integer)
RETURNS TABLE (query text, registered_by name)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT
        s.query,
        s.registered_by
    FROM tally.sources AS s
    WHERE s.counter_id = _source.p_counter_id;  -- noqa: RF01
END;

COMMENT ON FUNCTION tally._source(integer) IS
'Internal: the source-of-truth query of a counter and who registered it.';
