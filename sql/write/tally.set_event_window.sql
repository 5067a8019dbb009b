-- tally.set_event_window: how many days an event id is remembered: a replay
-- within that many days (and at most one day more) is left out. Default 7.
-- Lengthening it takes effect at once for ids still kept; shortening it lets
-- the next tally.maintain() drop the days that fell out.
CREATE OR REPLACE FUNCTION tally.set_event_window(p_days integer)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_days IS NULL OR p_days NOT BETWEEN 1 AND 366 THEN
        RAISE EXCEPTION 'tally.set_event_window: window of % days is out of range', coalesce(p_days::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass 1 to 366 days; the default is 7';
    END IF;
    UPDATE tally.settings SET event_window_days = p_days;
    PERFORM tally._event_partitions();
END;
$$;

COMMENT ON FUNCTION tally.set_event_window(integer) IS
'Remember event ids for p_days days (1-366, default 7): a replay within the window is left out.';
