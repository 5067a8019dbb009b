-- tally._fold: fold everything pending, in the caller's transaction: compactor
-- steps (tally._fold_step) until both delta generations have been drained
-- since the call began. For tests and one-off use inside a transaction; the
-- compactor (CALL tally.compact()) runs the same steps, committing each.
--
-- SECURITY INVOKER on purpose: pg_partman's create_partition_time() restores
-- search_path with a session-level set_config(), which would leave the
-- definer's 'pg_catalog, pg_temp' in the caller's session after a step that
-- created a partition; this wrapper puts the caller's value back.
CREATE OR REPLACE FUNCTION tally._fold(p_limit integer DEFAULT 100000)
RETURNS bigint
LANGUAGE plpgsql
AS $$
DECLARE
    v_search_path text := pg_catalog.current_setting('search_path');
    v_flips bigint := tally._flips();
    v_step record;
    v_folded bigint := 0;
BEGIN
    LOOP
        SELECT s.* INTO v_step FROM tally._fold_step(p_limit, v_flips) AS s;
        EXIT WHEN v_step.action OPERATOR(pg_catalog.=) 'idle';
        v_folded := v_folded OPERATOR(pg_catalog.+) v_step.folded;
    END LOOP;
    IF pg_catalog.current_setting('search_path') OPERATOR(pg_catalog.<>) v_search_path THEN
        PERFORM pg_catalog.set_config('search_path', v_search_path, false);
    END IF;
    RETURN v_folded;
END;
$$;

COMMENT ON FUNCTION tally._fold(integer) IS
'Internal: fold everything pending in the caller''s transaction '
'(steps until both generations are drained); returns deltas folded.';
