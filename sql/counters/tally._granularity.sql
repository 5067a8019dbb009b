-- tally._granularity: check that a counter keeps buckets of a granularity;
-- 'all' (the all-time total) is kept for every counter.
CREATE OR REPLACE FUNCTION tally._granularity(p_fn text, p_counter tally.counters, p_granularity text)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_granularity IS NULL THEN
        RAISE EXCEPTION '%: granularity must not be NULL', p_fn
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'use one of minute, hour, day, week, month';
    END IF;
    IF p_granularity = 'all' THEN
        RETURN p_granularity;
    END IF;
    IF NOT EXISTS (SELECT FROM tally.granularities AS g WHERE g.name = p_granularity) THEN
        RAISE EXCEPTION '%: unknown granularity "%"', p_fn, p_granularity
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'use one of minute, hour, day, week, month';
    END IF;
    IF NOT p_granularity = ANY (p_counter.granularities) THEN
        RAISE EXCEPTION '%: counter "%" does not keep % buckets', p_fn, p_counter.name, p_granularity
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = CASE WHEN cardinality(p_counter.granularities) = 0
                              THEN 'it keeps only the all-time total: use tally.counter_value()'
                              ELSE format('it keeps: %s', array_to_string(p_counter.granularities, ', ')) END;
    END IF;
    RETURN p_granularity;
END;
$$;

COMMENT ON FUNCTION tally._granularity(text, tally.counters, text) IS
'Internal: refuse a granularity that is unknown or that the counter does not keep.';
