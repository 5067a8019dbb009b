-- tally._check_increment: the rules an increment must follow, in one place,
-- for tally.increment_counter (p_element NULL) and element p_element of a
-- tally.increment_counters batch: a known counter, a valid key, a delta, a
-- valid timestamp and, when event ids are given (p_with_id), a valid event
-- id. Raises the first rule broken, naming the function (and the element)
-- and the bad value, with a hint and a specific SQLSTATE; returns when all
-- hold. Called only once the fast path found something wrong, so it costs
-- the hot path nothing.
CREATE OR REPLACE FUNCTION tally._check_increment(
    p_fn text,
    p_element bigint,
    p_counter text,
    p_key text,
    p_delta bigint,
    p_at timestamptz,
    p_with_id boolean,
    p_event_id text
)
RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_fn text := CASE WHEN p_element IS NULL THEN p_fn ELSE format('%s: element %s', p_fn, p_element) END;
BEGIN
    IF NOT EXISTS (SELECT FROM tally.counters AS c WHERE c.name = p_counter) THEN
        PERFORM tally._lookup_counter(v_fn, p_counter);
    END IF;
    PERFORM tally._check_key(v_fn, p_key);
    IF p_delta IS NULL AND p_element IS NULL THEN
        RAISE EXCEPTION '%: delta for counter "%" must not be NULL', p_fn, p_counter
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'omit it to add 1, or pass a negative delta to subtract';
    ELSIF p_delta IS NULL THEN
        RAISE EXCEPTION '%: delta must not be NULL', v_fn
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'every element needs a delta; nothing of this batch was applied';
    END IF;
    PERFORM tally._check_at(v_fn, p_at);
    IF p_with_id THEN
        IF p_event_id IS NULL THEN
            RAISE EXCEPTION '%: event id must not be NULL', v_fn
                USING ERRCODE = 'null_value_not_allowed',
                      HINT = 'give every element an event id, or pass p_event_ids => NULL; nothing was applied';
        END IF;
        PERFORM tally._check_event_id(v_fn, p_event_id);
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._check_increment(text, bigint, text, text, bigint, timestamptz, boolean, text) IS
'Internal: raise the first rule an increment (or batch element) breaks, with a clear error; return when all hold.';
