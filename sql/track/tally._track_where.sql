-- tally._track_where: p_where of tally.track_table checked and made
-- canonical. It must be one boolean expression over the table's own columns
-- using constants and PostgreSQL's built-in immutable functions and
-- operators only: no subquery, no other table, no function or operator of
-- anyone's (the triggers evaluate it with tally's privileges), nothing
-- volatile or stable (a row's contribution must be the same when it is
-- added and when it is taken away). Returns PostgreSQL's own rendering of
-- it (tally builds its SQL from that, never from the caller's text), NULL
-- for NULL (every row).
--
-- How: the text is first opened as a cursor of one SELECT over an empty
-- copy of the table, which PostgreSQL refuses for more than one statement
-- before running any; then it becomes the predicate of an index on that
-- copy, which PostgreSQL accepts only for an immutable expression over the
-- table's columns without subqueries; the index's recorded dependencies
-- show any function or operator that is not built in.
CREATE OR REPLACE FUNCTION tally._track_where(p_fn text, p_table regclass, p_where text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cursor refcursor;
    v_index oid;
    v_where text;
    v_state text;
    v_message text;
    v_foreign text;
BEGIN
    IF p_where IS NULL THEN
        RETURN NULL;
    END IF;
    IF btrim(p_where) = '' THEN
        RAISE EXCEPTION '%: p_where must not be empty', p_fn
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass NULL to count every row, or a boolean expression such as visible AND NOT deleted';
    END IF;
    IF to_regclass('pg_temp.tally_track_probe') IS NOT NULL THEN
        DROP TABLE pg_temp.tally_track_probe;
    END IF;
    EXECUTE format('CREATE TEMP TABLE tally_track_probe (LIKE %s) ON COMMIT DROP', p_table);
    BEGIN
        OPEN v_cursor FOR EXECUTE format('SELECT (%s)::boolean FROM pg_temp.tally_track_probe', p_where);
        CLOSE v_cursor;
        EXECUTE format('CREATE INDEX tally_track_probe_where ON pg_temp.tally_track_probe ((1)) WHERE (%s)',
                       p_where);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
        RAISE EXCEPTION '%: p_where % is not an immutable boolean expression over the columns of %', p_fn,
            quote_literal(p_where), p_table
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('%s (SQLSTATE %s)', v_message, v_state),
                  HINT = 'use the table''s columns, constants and built-in functions, e.g. '
                         'visible AND NOT deleted; no subquery, no now()';
    END;
    SELECT i.indexrelid, pg_get_expr(i.indpred, i.indrelid) INTO v_index, v_where
    FROM pg_catalog.pg_index AS i
    WHERE i.indrelid = to_regclass('pg_temp.tally_track_probe');
    -- (a built-in object is pinned: no dependency on it is recorded)
    SELECT string_agg(pg_describe_object(d.refclassid, d.refobjid, 0), ', ') INTO v_foreign
    FROM pg_catalog.pg_depend AS d
    WHERE d.classid = 'pg_class'::regclass AND d.objid = v_index
      AND d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass);
    DROP TABLE pg_temp.tally_track_probe;
    IF v_foreign IS NOT NULL THEN
        RAISE EXCEPTION '%: p_where % uses %, which is not built into PostgreSQL', p_fn, quote_literal(p_where),
            v_foreign
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'the triggers evaluate p_where with tally''s privileges: only built-in functions and '
                         'operators may appear in it';
    END IF;
    RETURN v_where;
END;
$$;

COMMENT ON FUNCTION tally._track_where(text, regclass, text) IS
'Internal: check p_where of tally.track_table (one immutable boolean expression over the table''s columns, '
'built-in functions only) and return it as PostgreSQL renders it.';
