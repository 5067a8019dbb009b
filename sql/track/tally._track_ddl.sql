-- tally._track_ddl: keeps tracked tables counted through DDL, as the event
-- triggers tally_track_ddl (ddl_command_end) and tally_track_drop
-- (sql_drop) that this file makes:
-- - DROP TABLE of a tracked table untracks it (tally._untrack): its
--   triggers went with it; the counter keeps what it counted.
-- - any other DDL on it (ALTER TABLE, RENAME, ...) checks again that it
--   can be counted (tally._track_check with the types it had, and p_where
--   against the columns now) and remakes the trigger function and source
--   from the columns' names now: a renamed key, timestamp or sum column, or
--   table, is followed; a dropped or retyped one, a column p_where uses
--   renamed or dropped, or tally's triggers disabled, make the DDL fail
--   with 2BP01, naming the counter (untrack it first).
-- - tally's triggers dropped alone (DROP TRIGGER) are refused the same way.
-- Tables nobody tracks cost one lookup in an empty table.
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
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tally.tracked_tables) THEN
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
        IF current_setting('tally.untracking', true) IS DISTINCT FROM 'on' THEN
            SELECT c.name, t.table_name::regclass AS tbl, d.object_identity INTO v_track
            FROM pg_catalog.pg_event_trigger_dropped_objects() AS d
            JOIN tally.tracked_tables AS t
                ON d.object_type = 'trigger'
               AND d.object_identity LIKE format('tally\_%s\_%% on %%', t.counter_id)
            JOIN tally.counters AS c ON c.id = t.counter_id
            LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'tally: trigger % counts table % for counter "%"', v_track.object_identity,
                    v_track.tbl, v_track.name
                    USING ERRCODE = 'dependent_objects_still_exist',
                          HINT = format('stop counting with tally.untrack_table(%L, %L)', v_track.name, v_track.tbl);
            END IF;
        END IF;
        RETURN;
    END IF;
    FOR v_track IN
        SELECT DISTINCT t.*, c.name, s.registered_by AS registrant
        FROM tally.tracked_tables AS t
        JOIN pg_catalog.pg_event_trigger_ddl_commands() AS d
            ON d.classid = 'pg_class'::regclass AND d.objid = t.table_name
        JOIN tally.counters AS c ON c.id = t.counter_id
        LEFT JOIN tally.sources AS s ON s.counter_id = t.counter_id AND s.query LIKE '/* tally.track_table */%'
        ORDER BY t.counter_id
    LOOP
        BEGIN
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
                'tally', v_track.table_name::regclass,
                (SELECT a.attname FROM pg_catalog.pg_attribute AS a
                 WHERE a.attrelid = v_track.table_name AND a.attnum = v_track.key_column),
                (SELECT a.attname FROM pg_catalog.pg_attribute AS a
                 WHERE a.attrelid = v_track.table_name AND a.attnum = v_track.at_column),
                (SELECT a.attname FROM pg_catalog.pg_attribute AS a
                 WHERE a.attrelid = v_track.table_name AND a.attnum = v_track.sum_column),
                v_track.key_type, v_track.sum_type);
            PERFORM tally._track_where('tally', v_track.table_name::regclass, v_track.predicate);
            IF EXISTS (
                SELECT 1 FROM pg_catalog.pg_trigger AS g
                WHERE g.tgrelid = v_track.table_name AND g.tgname ~ ('^tally_' || v_track.counter_id || '_[a-z]+$')
                  AND g.tgenabled NOT IN ('O', 'A')
            ) THEN
                RAISE EXCEPTION 'its triggers tally_%_* would be disabled', v_track.counter_id
                    USING ERRCODE = 'object_not_in_prerequisite_state';
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            RAISE EXCEPTION 'tally: table % is counted by counter "%", which this change would break: %',
                v_track.table_name::regclass, v_track.name, v_message
                USING ERRCODE = 'dependent_objects_still_exist',
                      DETAIL = format('SQLSTATE %s', v_state),
                      HINT = format('stop counting first: tally.untrack_table(%L, %L)', v_track.name,
                                    v_track.table_name::regclass);
        END;
        PERFORM tally._track_install(v_track.counter_id, v_track.registrant);
    END LOOP;
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
END;
$event_triggers$;
