-- tally._fold: one fold in the caller's transaction (see
-- tally._fold_into_rollups). This SECURITY INVOKER wrapper exists because
-- pg_partman's create_partition_time() restores search_path with a
-- session-level set_config(), which would otherwise leave the definer's
-- 'pg_catalog, pg_temp' in the caller's session after a fold that created a
-- partition: the wrapper puts the caller's value back.
CREATE OR REPLACE FUNCTION tally._fold(p_limit integer DEFAULT 100000)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_search_path text := pg_catalog.current_setting('search_path');
    v_folded bigint;
BEGIN
    v_folded := tally._fold_into_rollups(p_limit);
    IF pg_catalog.current_setting('search_path') OPERATOR(pg_catalog.<>) v_search_path THEN
        PERFORM pg_catalog.set_config('search_path', v_search_path, false);
    END IF;
    RETURN v_folded;
END;
$$;

COMMENT ON FUNCTION tally._fold(integer) IS
'Internal: fold up to p_limit pending deltas (all-or-nothing, under the fold lock); returns how many were folded.';
