-- tally._track_ddl: keeps tracked tables counted through DDL, as the event
-- triggers tally_track_ddl (ddl_command_end), tally_track_drop (sql_drop)
-- and tally_track_rewrite (table_rewrite) that this file makes:
-- - DROP TABLE of a tracked table untracks it (tally._untrack): its
--   triggers went with it; the counter keeps what it counted.
-- - DDL on a tracked table, on its schema, or dropping one of its columns
--   (also by DROP TYPE ... CASCADE) checks again that it can be counted
--   (tally._track_check with the types it had, p_where against the columns
--   now) and remakes the trigger function and source from the names now: a
--   renamed key, timestamp or sum column, table or schema is followed; a
--   dropped or retyped one, or a column p_where uses renamed or dropped,
--   makes the DDL fail with 2BP01, naming the counter (untrack it first).
-- - after any DDL, every tracked table must still have its four triggers,
--   enabled, under their names, and no inheritance or partition tie
--   (statement triggers would miss or double rows): else 2BP01.
-- - a rewrite of a tracked table's rows (ALTER COLUMN ... TYPE/USING) is
--   refused: it changes rows without firing a trigger.
-- tally's own DDL on them (tracking, untracking) sets tally.tracking_ddl
-- and is left alone. Tables nobody tracks cost one lookup in an empty
-- table.
CREATE OR REPLACE FUNCTION tally._track_ddl()
RETURNS event_trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_track record;
    v_state text;
    v_message text;
    v_affected integer[];
    v_rewritten oid;
    v_counter text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tally.tracked_tables)
       OR current_setting('tally.tracking_ddl', true) IS NOT DISTINCT FROM 'on' THEN
        RETURN;
    END IF;
    -- (the DDL below, and what it calls, is tally's own: left alone; the
    -- commands of an event trigger's own DDL are listed with the outer ones)
    PERFORM set_config('tally.tracking_ddl', 'on', true);
    IF TG_EVENT = 'table_rewrite' THEN
        -- (dynamic: a static check of this function must not call it)
        EXECUTE 'SELECT pg_catalog.pg_event_trigger_table_rewrite_oid()' INTO v_rewritten;
        SELECT c.name INTO v_counter
        FROM tally.tracked_tables AS t JOIN tally.counters AS c ON c.id = t.counter_id
        WHERE t.table_name = v_rewritten;
        IF FOUND THEN
            RAISE EXCEPTION 'tally: table % is counted by counter "%": a rewrite of its rows fires no trigger',
                v_rewritten::regclass, v_counter
                USING ERRCODE = 'dependent_objects_still_exist',
                      HINT = format('untrack it (tally.untrack_table(%L, %L)), change it, and track it again',
                                    v_counter, v_rewritten::regclass);
        END IF;
        PERFORM set_config('tally.tracking_ddl', 'off', true);
        RETURN;
    END IF;
    IF TG_EVENT = 'sql_drop' THEN
        FOR v_track IN
            SELECT t.counter_id FROM tally.tracked_tables AS t
            WHERE t.table_name IN (
                SELECT d.objid FROM pg_catalog.pg_event_trigger_dropped_objects() AS d
                WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
            )
            ORDER BY 1
        LOOP
            PERFORM tally._untrack(v_track.counter_id);
        END LOOP;
        SELECT array_agg(DISTINCT t.counter_id) INTO v_affected
        FROM tally.tracked_tables AS t
        JOIN pg_catalog.pg_event_trigger_dropped_objects() AS d
            ON d.classid = 'pg_class'::regclass AND d.objid = t.table_name AND d.objsubid > 0;
    ELSE
        SELECT array_agg(DISTINCT t.counter_id) INTO v_affected
        FROM tally.tracked_tables AS t
        JOIN pg_catalog.pg_class AS c ON c.oid = t.table_name
        JOIN pg_catalog.pg_event_trigger_ddl_commands() AS d
            ON (d.classid = 'pg_class'::regclass AND d.objid = t.table_name)
            OR (d.classid = 'pg_namespace'::regclass AND d.objid = c.relnamespace);
    END IF;
    FOR v_track IN
        SELECT t.*, c.name, s.registered_by AS registrant, coalesce(t.counter_id = ANY (v_affected), false) AS affected
        FROM tally.tracked_tables AS t
        JOIN tally.counters AS c ON c.id = t.counter_id
        LEFT JOIN tally.sources AS s ON s.counter_id = t.counter_id AND s.query LIKE '/* tally.track_table */%'
        ORDER BY t.counter_id
    LOOP
        BEGIN
            IF (SELECT count(*) FROM pg_catalog.pg_trigger AS g
                WHERE g.tgrelid = v_track.table_name AND g.tgenabled IN ('O', 'A')
                  AND g.tgname IN (format('tally_%s_insert', v_track.counter_id),
                                   format('tally_%s_update', v_track.counter_id),
                                   format('tally_%s_delete', v_track.counter_id),
                                   format('tally_%s_truncate', v_track.counter_id))) <> 4 THEN
                RAISE EXCEPTION 'its triggers tally_%_* would be dropped, renamed or disabled', v_track.counter_id
                    USING ERRCODE = 'object_not_in_prerequisite_state';
            END IF;
            IF EXISTS (
                SELECT 1 FROM pg_catalog.pg_inherits AS i
                WHERE i.inhrelid = v_track.table_name OR i.inhparent = v_track.table_name
            ) THEN
                RAISE EXCEPTION 'it would be part of an inheritance tree or a partitioned table'
                    USING ERRCODE = 'feature_not_supported';
            END IF;
            CONTINUE WHEN NOT v_track.affected;
            IF EXISTS (
                SELECT 1 FROM unnest(ARRAY[v_track.key_column, v_track.at_column, v_track.sum_column]) AS u (attnum)
                WHERE u.attnum IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = v_track.table_name AND a.attnum = u.attnum AND NOT a.attisdropped)
            ) THEN
                RAISE EXCEPTION 'a column it counts by (key, timestamp or sum) would be dropped'
                    USING ERRCODE = 'undefined_column';
            END IF;
            PERFORM tally._track_check(
                'tally', v_track.table_name,
                (SELECT a.attname FROM pg_catalog.pg_attribute AS a
                 WHERE a.attrelid = v_track.table_name AND a.attnum = v_track.key_column),
                (SELECT a.attname FROM pg_catalog.pg_attribute AS a
                 WHERE a.attrelid = v_track.table_name AND a.attnum = v_track.at_column),
                (SELECT a.attname FROM pg_catalog.pg_attribute AS a
                 WHERE a.attrelid = v_track.table_name AND a.attnum = v_track.sum_column),
                v_track.key_type, v_track.sum_type);
            PERFORM tally._track_where('tally', v_track.table_name, v_track.predicate);
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            RAISE EXCEPTION 'tally: table % is counted by counter "%", which this change would break: %',
                v_track.table_name, v_track.name, v_message
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('SQLSTATE %s', v_state),
                      HINT = format('stop counting first: tally.untrack_table(%L, %L)', v_track.name,
                                    v_track.table_name);
        END;
        PERFORM tally._track_install(v_track.counter_id, v_track.registrant);
    END LOOP;
    PERFORM set_config('tally.tracking_ddl', 'off', true);
END;
$$;

COMMENT ON FUNCTION tally._track_ddl() IS
'Internal: event trigger keeping tracked tables counted through DDL (renames followed, breaking changes refused, '
'a dropped table untracked).';

-- (made once: the migration drops these with the function)
DO $event_triggers$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger AS e WHERE e.evtname = 'tally_track_ddl') THEN
        CREATE EVENT TRIGGER tally_track_ddl ON ddl_command_end EXECUTE FUNCTION tally._track_ddl();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger AS e WHERE e.evtname = 'tally_track_drop') THEN
        CREATE EVENT TRIGGER tally_track_drop ON sql_drop EXECUTE FUNCTION tally._track_ddl();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_event_trigger AS e WHERE e.evtname = 'tally_track_rewrite') THEN
        CREATE EVENT TRIGGER tally_track_rewrite ON table_rewrite EXECUTE FUNCTION tally._track_ddl();
    END IF;
END;
$event_triggers$;
