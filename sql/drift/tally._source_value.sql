-- tally._source_value: what the registered source of truth of a counter
-- says for a key (NULL without a source, or when the source has no row for
-- the key). The query runs in tally.source_<counter id>, a SECURITY DEFINER
-- function owned by its registrant (tally.set_source): with that role's
-- privileges, never tally's.
CREATE OR REPLACE FUNCTION tally._source_value(p_counter_id integer, p_key text)
RETURNS bigint
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value bigint;
BEGIN
    IF to_regprocedure(format('tally.%I(text)', 'source_' || p_counter_id)) IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT tally.%I($1)', 'source_' || p_counter_id) INTO v_value USING p_key;
    RETURN v_value;
END;
$$;

COMMENT ON FUNCTION tally._source_value(integer, text) IS
'Internal: the registered source of truth''s value for a key, computed with its registrant''s privileges.';
