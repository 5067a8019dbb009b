-- tally._time_zone: the IANA time zone named p_zone (any case), spelled as
-- PostgreSQL lists it, for a counter's buckets; a clear error for anything
-- else. Only the names pg_timezone_names lists are taken (the IANA zones):
-- an abbreviation such as 'CEST' or an offset such as '+05:30' or 'UTC+5'
-- is refused: a place's calendar, with its daylight-saving changes, is what
-- a counter's days follow.
CREATE OR REPLACE FUNCTION tally._time_zone(p_fn text, p_zone text)
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_name text;
BEGIN
    IF p_zone IS NULL THEN
        RAISE EXCEPTION '%: time zone must not be NULL', p_fn
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'pass an IANA time zone name such as ''UTC'', ''America/New_York'' or ''Asia/Kolkata''';
    END IF;
    IF upper(p_zone) = 'UTC' THEN
        RETURN 'UTC';  -- (the default: no look-up in the zone list)
    END IF;
    SELECT min(z.name) INTO v_name FROM pg_catalog.pg_timezone_names AS z WHERE lower(z.name) = lower(p_zone);
    IF v_name IS NULL THEN
        RAISE EXCEPTION '%: unknown time zone "%"', p_fn, p_zone
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass an IANA time zone name as listed in pg_timezone_names, e.g. ''Europe/Berlin'''
                         ' (not an abbreviation or an offset)';
    END IF;
    RETURN v_name;
END;
$$;

COMMENT ON FUNCTION tally._time_zone(text, text) IS
'Internal: a time zone name checked against pg_timezone_names, as PostgreSQL spells it.';
