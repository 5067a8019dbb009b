-- tally._check_event_id: refuse an empty or oversized event id (limit: 256
-- bytes). NULL is no event id: the increment is not deduplicated.
CREATE OR REPLACE FUNCTION tally._check_event_id(p_fn text, p_event_id text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_event_id = '' THEN
        RAISE EXCEPTION '%: event id must not be empty', p_fn
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass a unique id of the event (e.g. a UUID), or NULL for no deduplication';
    END IF;
    IF p_event_id IS NOT NULL AND NOT tally._valid_event_id(p_event_id) THEN
        RAISE EXCEPTION '%: event id of % bytes is over the 256-byte limit', p_fn, octet_length(p_event_id)
            USING ERRCODE = 'string_data_right_truncation',
                  HINT = 'use a shorter id, e.g. a UUID or a hash of the long one';
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._check_event_id(text, text) IS
'Internal: refuse empty or over-256-byte event ids with a clear error naming the caller.';
