-- tally._check_at: refuse a NULL, infinite, pre-1970 or more-than-a-day-ahead
-- timestamp; an increment at such a time is a bug in the caller, and a
-- bucket for it would need a partition nobody wants.
CREATE OR REPLACE FUNCTION tally._check_at(p_fn text, p_at timestamptz)
RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_at IS NULL THEN
        RAISE EXCEPTION '%: timestamp must not be NULL', p_fn
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'omit it to count the increment at now()';
    END IF;
    IF NOT tally._valid_at(p_at) THEN
        RAISE EXCEPTION '%: timestamp % is out of range', p_fn, p_at
            USING ERRCODE = 'datetime_field_overflow',
                  HINT = 'increments must be finite, after 1970-01-01 and at most one day ahead of now()';
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._check_at(text, timestamptz) IS
'Internal: refuse NULL, infinite, pre-1970 or far-future increment timestamps.';
