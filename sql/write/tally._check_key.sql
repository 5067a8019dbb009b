-- tally._check_key: refuse a NULL, empty or oversized key (limit: 512 bytes).
CREATE OR REPLACE FUNCTION tally._check_key(p_fn text, p_key text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_key IS NULL OR p_key = '' THEN
        RAISE EXCEPTION '%: key must not be NULL or empty', p_fn
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'pass the id of the thing being counted, as text (e.g. ''42'')';
    END IF;
    IF NOT tally._valid_key(p_key) THEN
        RAISE EXCEPTION '%: key of % bytes is over the 512-byte limit', p_fn, octet_length(p_key)
            USING ERRCODE = 'string_data_right_truncation',
                  HINT = 'use a shorter key, e.g. an id or a hash of the long value';
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._check_key(text, text) IS
'Internal: refuse NULL, empty or over-512-byte keys with a clear error naming the caller.';
