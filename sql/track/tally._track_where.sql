-- tally._track_where: p_where of tally.track_table checked and made
-- canonical. It must be one boolean expression over the table's own columns
-- using constants and PostgreSQL's built-in immutable functions and
-- operators only: no subquery, no other table, no function, operator or
-- domain of anyone's (the triggers evaluate it with tally's privileges),
-- nothing volatile or stable (a row's contribution must be the same when
-- it is added and when it is taken away). Returns PostgreSQL's own
-- rendering of it (tally builds its SQL from that, never from the caller's
-- text), NULL for NULL (every row).
--
-- How, without running any of it: a text with a ';' is refused (so it is
-- one statement wherever it is put); it becomes the one column of a view
-- over an empty copy of the table, which PostgreSQL parses without
-- planning or running it; the view's recorded dependencies must be that
-- copy alone, types that are not domains (a domain's CHECK could run
-- anything) and collations: any function or operator recorded is not
-- built in (a built-in object is pinned: no dependency on it is
-- recorded). Only then is it the predicate of an index on that copy, which
-- PostgreSQL accepts only for an immutable expression over the table's
-- columns without subqueries.
CREATE OR REPLACE FUNCTION tally._track_where(p_fn text, p_table regclass, p_where text)
RETURNS text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_was text := current_setting('tally.tracking_ddl', true);
    v_where text;
    v_state text;
    v_message text;
    v_foreign text;
BEGIN
    IF p_where IS NULL THEN
        RETURN NULL;
    END IF;
    IF btrim(p_where) = '' OR position(';' IN p_where) > 0 THEN
        RAISE EXCEPTION '%: p_where % is empty or holds a semicolon', p_fn, quote_literal(p_where)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass NULL to count every row, or one boolean expression such as visible AND NOT deleted';
    END IF;
    -- (tally._track_ddl leaves the probe's DDL alone)
    PERFORM set_config('tally.tracking_ddl', 'on', true);
    IF to_regclass('pg_temp.tally_track_probe') IS NOT NULL THEN
        DROP TABLE pg_temp.tally_track_probe CASCADE;
    END IF;
    EXECUTE format('CREATE TEMP TABLE tally_track_probe (LIKE %s) ON COMMIT DROP', p_table);
    BEGIN
        EXECUTE format('CREATE TEMP VIEW tally_track_probe_where AS SELECT (%s)::boolean AS w'
                       ' FROM pg_temp.tally_track_probe', p_where);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
        RAISE EXCEPTION '%: p_where % is not a boolean expression over the columns of %', p_fn,
            quote_literal(p_where), p_table
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('%s (SQLSTATE %s)', v_message, v_state),
                  HINT = 'use the table''s columns, constants and built-in functions, e.g. visible AND NOT deleted';
    END;
    -- (what the view's rule depends on: what the expression refers to)
    SELECT string_agg(pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), ', ') INTO v_foreign
    FROM pg_catalog.pg_rewrite AS r
    JOIN pg_catalog.pg_depend AS d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
    WHERE r.ev_class = to_regclass('pg_temp.tally_track_probe_where')
      AND NOT (d.refclassid = 'pg_class'::regclass
               AND d.refobjid IN (to_regclass('pg_temp.tally_track_probe'),
                                  to_regclass('pg_temp.tally_track_probe_where')))
      AND NOT (d.refclassid = 'pg_type'::regclass
               AND (SELECT t.typtype FROM pg_catalog.pg_type AS t WHERE t.oid = d.refobjid) <> 'd')
      AND d.refclassid <> 'pg_collation'::regclass;
    IF v_foreign IS NOT NULL
       OR (SELECT count(*) FROM pg_catalog.pg_attribute AS a
           WHERE a.attrelid = to_regclass('pg_temp.tally_track_probe_where') AND a.attnum > 0) <> 1 THEN
        RAISE EXCEPTION '%: p_where % uses %, not only the table''s columns and what is built into PostgreSQL',
            p_fn, quote_literal(p_where), coalesce(v_foreign, 'more than one expression')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'the triggers evaluate p_where with tally''s privileges: no other table, no domain, no '
                         'function or operator of anyone''s may appear in it';
    END IF;
    BEGIN
        EXECUTE format('CREATE INDEX tally_track_probe_pred ON pg_temp.tally_track_probe ((1)) WHERE (%s)',
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
    SELECT pg_get_expr(i.indpred, i.indrelid) INTO v_where
    FROM pg_catalog.pg_index AS i
    WHERE i.indrelid = to_regclass('pg_temp.tally_track_probe');
    -- (the view goes with it: a DROP VIEW of a temporary view is refused by
    -- Citus on a coordinator)
    DROP TABLE pg_temp.tally_track_probe CASCADE;
    PERFORM set_config('tally.tracking_ddl', coalesce(v_was, 'off'), true);
    RETURN v_where;
END;
$$;

COMMENT ON FUNCTION tally._track_where(text, regclass, text) IS
'Internal: check p_where of tally.track_table (one immutable boolean expression over the table''s columns, '
'built-in functions only) and return it as PostgreSQL renders it.';
