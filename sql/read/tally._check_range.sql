-- tally._check_range: refuse a NULL or inverted time range.
CREATE OR REPLACE FUNCTION tally._check_range(p_fn text, p_from timestamptz, p_to timestamptz)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_from IS NULL OR p_to IS NULL THEN
        RAISE EXCEPTION '%: p_from and p_to must not be NULL', p_fn
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'pass the start and the end of the time range';
    END IF;
    IF p_from > p_to THEN
        RAISE EXCEPTION '%: p_from % is after p_to %', p_fn, p_from, p_to
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'swap them: the range is [p_from, p_to)';
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._check_range(text, timestamptz, timestamptz) IS
'Internal: refuse a NULL or inverted [p_from, p_to) range.';
