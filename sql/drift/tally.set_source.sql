-- tally.set_source: register the source of truth of a counter: a query
-- taking the key as $1 and returning the true count, e.g.
-- 'SELECT count(*) FROM follow WHERE subject = $1'. tally.check_drift and
-- tally.reconcile run it on a sample of keys (or the keys given), in the
-- background, never per event. NULL removes the source.
--
-- The query always runs with the privileges of the role that registered it
-- (session_user) and that role's search_path at registration
-- (p_search_path, taken at the call site by default): it becomes the body of
-- a SECURITY DEFINER function tally.source_<counter id>(text) owned by that
-- role, executable by nobody else, which tally's own check_drift and
-- reconcile call. So a source can never run with tally's privileges, and
-- what tally records as the source's answer is always the query's answer.
CREATE OR REPLACE FUNCTION tally.set_source(
    p_counter text,
    p_query text,
    p_search_path text DEFAULT pg_catalog.current_setting('search_path')
)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.set_source';
    v_counter tally.counters := tally._lookup_counter(c_fn, p_counter);
    v_fn text := format('tally.%I(text)', 'source_' || v_counter.id);
BEGIN
    IF p_query IS NULL THEN
        DELETE FROM tally.sources AS s WHERE s.counter_id = v_counter.id;
        IF to_regprocedure(v_fn) IS NOT NULL THEN
            EXECUTE format('DROP FUNCTION %s', v_fn);
        END IF;
        RETURN;
    END IF;
    IF btrim(p_query) = '' OR position('$1' IN p_query) = 0 THEN
        RAISE EXCEPTION '%: the source query of "%" must use the key as $1', c_fn, p_counter
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'e.g. SELECT count(*) FROM follow WHERE subject = $1';
    END IF;
    PERFORM tally._install_source(v_counter, p_query, session_user, p_search_path);
    -- (registered_at from VALUES: on a distributed install Citus allows no
    -- volatile or stable function in DO UPDATE SET)
    INSERT INTO tally.sources AS s (counter_id, query, registered_by, registered_at)
    VALUES (v_counter.id, p_query, session_user, now())
    ON CONFLICT (counter_id) DO UPDATE
    SET query = excluded.query, registered_by = excluded.registered_by, registered_at = excluded.registered_at;
END;
$$;

COMMENT ON FUNCTION tally.set_source(text, text, text) IS
'Register (or with NULL remove) the source-of-truth query of a counter: key as $1, returns the true count; '
'it runs with its registrant''s privileges.';
