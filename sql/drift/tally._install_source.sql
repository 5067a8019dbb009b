-- tally._install_source: (re)create tally.source_<counter id>(text), the
-- function that runs a counter's source-of-truth query p_query (the key as
-- $1): SECURITY DEFINER, owned by p_registrant (so the query runs with that
-- role's privileges and nobody else's), with p_search_path as its own
-- search_path, executable by its owner only. A query that does not parse as
-- one integer column is refused with 22023, naming the counter. Used by
-- tally.set_source (registrant: the session user) and by the migration that
-- introduced these functions.
CREATE OR REPLACE FUNCTION tally._install_source(
    p_counter tally.counters, p_query text, p_registrant name, p_search_path text
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_fn text := format('tally.%I(text)', 'source_' || p_counter.id);
    v_state text;
    v_message text;
BEGIN
    BEGIN
        -- the registrant's search_path, validated as a setting, becomes the
        -- function's own (SET ... FROM CURRENT): no text is spliced into DDL
        PERFORM set_config('search_path', coalesce(p_search_path, ''), true);
        EXECUTE format(
            'CREATE OR REPLACE FUNCTION tally.%I(p_key text) RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER'
            ' SET search_path FROM CURRENT AS %L', 'source_' || p_counter.id, p_query);
        PERFORM set_config('search_path', 'pg_catalog, pg_temp', true);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
        RAISE EXCEPTION 'tally.set_source: the source query of "%" is not a query returning one count: %',
            p_counter.name, v_message
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('checked with search_path %s (SQLSTATE %s)', p_search_path, v_state),
                  HINT = 'one column of an integer type, the key as $1, e.g. '
                         'SELECT count(*) FROM follow WHERE subject = $1';
    END;
    EXECUTE format('ALTER FUNCTION %s OWNER TO %I', v_fn, p_registrant);
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', v_fn);
    EXECUTE format('COMMENT ON FUNCTION %s IS %L', v_fn,
                   format('tally: the source of truth of counter %s, registered by %s', p_counter.name, p_registrant));
END;
$$;

COMMENT ON FUNCTION tally._install_source(tally.counters, text, name, text) IS
'Internal: (re)create the function that runs a counter''s source query with its registrant''s privileges.';
