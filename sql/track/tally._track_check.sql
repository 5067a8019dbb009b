-- tally._track_check: the rules a table and its columns must follow to be
-- tracked, checked when it is tracked and after every DDL on it
-- (tally._track_ddl): an ordinary, permanent table without inheritance
-- (statement triggers on a parent or child would miss rows written through
-- the other), logged (a crash empties an unlogged one, not its counter),
-- the key column of a built-in type whose text is the same in every
-- session (text, varchar, char, integers, numeric, uuid), the at column a
-- timestamptz, the sum column a smallint, integer or bigint. p_key_type and
-- p_sum_type, when given, are the types the columns had when tracked (a
-- changed type would change keys or amounts under the counter). Raises with
-- a clear error naming p_fn; returns the columns' numbers and types.
CREATE OR REPLACE FUNCTION tally._track_check(
    p_fn text,
    p_table regclass,
    p_key_column name,
    p_at_column name,
    p_sum_column name,
    p_key_type oid DEFAULT NULL,
    p_sum_type oid DEFAULT NULL,
    OUT key_column smallint,
    OUT key_type oid,
    OUT at_column smallint,
    OUT sum_column smallint,
    OUT sum_type oid
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rel record;
    v_column record;
BEGIN
    IF p_table IS NULL OR p_key_column IS NULL THEN
        RAISE EXCEPTION '%: p_table and p_key_column must not be NULL', p_fn
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'e.g. tally.track_table(''followers'', ''follow'', ''subject'')';
    END IF;
    SELECT c.relkind, c.relpersistence INTO v_rel FROM pg_catalog.pg_class AS c WHERE c.oid = p_table;
    IF v_rel.relkind = 'p' OR v_rel.relpersistence IN ('t', 'u')
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits AS i WHERE i.inhrelid = p_table OR i.inhparent = p_table) THEN
        RAISE EXCEPTION '%: table % is %', p_fn, p_table,
            CASE WHEN v_rel.relkind = 'p' THEN 'partitioned'
                 WHEN v_rel.relpersistence = 't' THEN 'temporary'
                 WHEN v_rel.relpersistence = 'u' THEN 'unlogged (a crash empties it, not its counter)'
                 ELSE 'part of an inheritance tree' END
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'tally tracks ordinary permanent tables: statement triggers on a partitioned or '
                         'inherited table miss the rows written to its partitions or children directly';
    ELSIF v_rel.relkind IS DISTINCT FROM 'r' THEN
        RAISE EXCEPTION '%: % is not a table', p_fn, p_table
            USING ERRCODE = 'wrong_object_type',
                  HINT = 'track the table the rows are written to, not a view or foreign table';
    END IF;
    FOR v_column IN
        SELECT u.role, u.name, a.attnum, a.atttypid
        FROM unnest(ARRAY['p_key_column', 'p_at_column', 'p_sum_column'],
                    ARRAY[p_key_column, p_at_column, p_sum_column]) AS u (role, name)
        LEFT JOIN pg_catalog.pg_attribute AS a
            ON a.attrelid = p_table AND a.attname = u.name AND a.attnum > 0 AND NOT a.attisdropped
        WHERE u.name IS NOT NULL
    LOOP
        IF v_column.attnum IS NULL THEN
            RAISE EXCEPTION '%: table % has no column % (%)', p_fn, p_table, quote_ident(v_column.name),
                v_column.role
                USING ERRCODE = 'undefined_column',
                      HINT = format('the columns of %s are: %s', p_table, (
                          SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                          FROM pg_catalog.pg_attribute AS a
                          WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped));
        END IF;
        IF v_column.role = 'p_key_column' THEN
            key_column := v_column.attnum;
            key_type := v_column.atttypid;
            -- (a key is the column's text: of a built-in type whose text
            -- depends on no setting, and has no cast anyone could add)
            IF key_type NOT IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype, 'numeric'::regtype,
                                'text'::regtype, 'character varying'::regtype, 'character'::regtype,
                                'uuid'::regtype) THEN
                RAISE EXCEPTION '%: the key column % of table % is %', p_fn, quote_ident(v_column.name), p_table,
                    format_type(key_type, NULL)
                    USING ERRCODE = 'datatype_mismatch',
                          HINT = 'a key column is text, varchar, char, smallint, integer, bigint, numeric or uuid: '
                                 'the text of other types depends on settings (DateStyle, ...) or on casts';
            END IF;
            IF key_type <> p_key_type THEN
                RAISE EXCEPTION '%: the key column % of table % changed type from % to %', p_fn,
                    quote_ident(v_column.name), p_table, format_type(p_key_type, NULL), format_type(key_type, NULL)
                    USING ERRCODE = 'datatype_mismatch',
                          HINT = 'the text of its values are the counter''s keys: untrack the table first';
            END IF;
        ELSIF v_column.role = 'p_at_column' THEN
            at_column := v_column.attnum;
            IF v_column.atttypid <> 'timestamptz'::regtype THEN
                RAISE EXCEPTION '%: column % of table % is %, not timestamptz (p_at_column)', p_fn,
                    quote_ident(v_column.name), p_table, format_type(v_column.atttypid, NULL)
                    USING ERRCODE = 'datatype_mismatch',
                          HINT = 'a row''s timestamp picks its buckets: it must name an instant';
            END IF;
        ELSE
            sum_column := v_column.attnum;
            sum_type := v_column.atttypid;
            IF sum_type NOT IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype)
               OR sum_type <> p_sum_type THEN
                RAISE EXCEPTION '%: column % of table % is %, not smallint, integer or bigint%', p_fn,
                    quote_ident(v_column.name), p_table, format_type(sum_type, NULL),
                    CASE WHEN p_sum_type IS NOT NULL THEN format(' as %s when tracked', format_type(p_sum_type, NULL))
                         ELSE '' END
                    USING ERRCODE = 'datatype_mismatch',
                          HINT = 'the counter adds the sum column''s values: it must be an integer type';
            END IF;
        END IF;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION tally._track_check(text, regclass, name, name, name, oid, oid) IS
'Internal: check a table and its columns can be tracked (or still can, after DDL); their numbers and types.';
