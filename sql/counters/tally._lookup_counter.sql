-- tally._lookup_counter: look a counter up by name for a public function, or refuse
-- with the calling function's name in the message. Every read and admin path
-- goes through here so "unknown counter" reads the same everywhere.
CREATE OR REPLACE FUNCTION tally._lookup_counter(p_fn text, p_counter text)
RETURNS tally.counters
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_counter tally.counters;
BEGIN
    IF p_counter IS NULL OR p_counter = '' THEN
        RAISE EXCEPTION '%: counter name must not be NULL or empty', p_fn
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'pass the name given to tally.create_counter()';
    END IF;
    SELECT c.* INTO v_counter FROM tally.counters AS c WHERE c.name = p_counter;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: unknown counter "%"', p_fn, p_counter
            USING ERRCODE = 'undefined_object',
                  HINT = format('create it with tally.create_counter(%L)', p_counter);
    END IF;
    RETURN v_counter;
END;
$$;

COMMENT ON FUNCTION tally._lookup_counter(text, text) IS
'Internal: the counter row for a name, or a clear undefined_object error naming the caller.';
