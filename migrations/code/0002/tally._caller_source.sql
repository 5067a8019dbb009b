-- tally._caller_source: the source-of-truth query of a counter for the
-- drift functions, or NULL without one; refuses unless the caller is the
-- role that registered it, so a source query never runs with other
-- privileges than its registrant's. SECURITY INVOKER, like its callers.
CREATE OR REPLACE FUNCTION tally._caller_source(p_fn text, p_counter tally.counters)
RETURNS text
LANGUAGE plpgsql
STABLE
AS $$
DECLARE
    v_source record;
BEGIN
    SELECT s.* INTO v_source FROM tally._source(p_counter.id) AS s;
    IF v_source.query IS NOT NULL AND v_source.registered_by OPERATOR(pg_catalog.<>) session_user THEN
        RAISE EXCEPTION '%: the source of "%" was registered by %; run it as that role',
            p_fn, p_counter.name, v_source.registered_by
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'a source query never runs with other privileges than its registrant''s';
    END IF;
    RETURN v_source.query;
END;
$$;

COMMENT ON FUNCTION tally._caller_source(text, tally.counters) IS
'Internal: a counter''s source query, if the caller registered it (else 42501); NULL without one.';
