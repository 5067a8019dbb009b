-- tally.set_source: register the source of truth of a counter: a query
-- taking the key as $1 and returning the true count, e.g.
-- 'SELECT count(*) FROM follow WHERE subject = $1'. tally.check_drift runs
-- it on a sample of keys, in the background, never per event, and only as
-- the role that registered it. NULL removes the source.
CREATE OR REPLACE FUNCTION tally.set_source(p_counter text, p_query text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.set_source';
    v_counter tally.counters := tally._counter(c_fn, p_counter);
BEGIN
    IF p_query IS NULL THEN
        DELETE FROM tally.sources AS s WHERE s.counter_id = v_counter.id;
        RETURN;
    END IF;
    IF btrim(p_query) = '' OR position('$1' IN p_query) = 0 THEN
        RAISE EXCEPTION '%: the source query of "%" must use the key as $1', c_fn, p_counter
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'e.g. SELECT count(*) FROM follow WHERE subject = $1';
    END IF;
    INSERT INTO tally.sources AS s (counter_id, query, registered_by)
    VALUES (v_counter.id, p_query, session_user)
    ON CONFLICT (counter_id) DO UPDATE
    SET query = excluded.query, registered_by = excluded.registered_by, registered_at = now();
END;
$$;

COMMENT ON FUNCTION tally.set_source(text, text) IS
'Register (or with NULL remove) the source-of-truth query of a counter: key as $1, returns the true count.';
