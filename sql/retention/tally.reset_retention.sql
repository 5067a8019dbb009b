-- tally.reset_retention: drop a counter's own retention for a granularity,
-- so the granularity's default applies again. Returns whether there was one.
CREATE OR REPLACE FUNCTION tally.reset_retention(p_counter text, p_granularity text)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.reset_retention';
    v_counter tally.counters := tally._lookup_counter(c_fn, p_counter);
BEGIN
    PERFORM tally._granularity(c_fn, v_counter, p_granularity);
    PERFORM tally._note_coverage(v_counter.id, p_granularity);
    DELETE FROM tally.retention AS r WHERE r.counter_id = v_counter.id AND r.granularity = p_granularity;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM tally._sync_retention();
    RETURN true;
END;
$$;

COMMENT ON FUNCTION tally.reset_retention(text, text) IS
'Remove a counter''s own retention for a granularity so the default applies again; true if there was one.';
