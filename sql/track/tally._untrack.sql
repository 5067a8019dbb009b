-- tally._untrack: stop counting a tracked table: its triggers (when the
-- table is still there), its trigger function, its log, the source of truth
-- tally.track_table registered (a source set by hand since stays) and its
-- tally.tracked_tables row go; the counter and what it counted stay. Sets
-- tally.tracking_ddl for the transaction, so tally._track_ddl lets these
-- triggers be dropped.
CREATE OR REPLACE FUNCTION tally._untrack(p_counter_id integer)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_was text;
    v_track tally.tracked_tables;
    v_trigger name;
BEGIN
    SELECT t.* INTO v_track FROM tally.tracked_tables AS t WHERE t.counter_id = p_counter_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_was := current_setting('tally.tracking_ddl', true);
    PERFORM set_config('tally.tracking_ddl', 'on', true);
    FOR v_trigger IN
        SELECT g.tgname FROM pg_catalog.pg_trigger AS g
        WHERE g.tgrelid = v_track.table_name AND g.tgname ~ ('^tally_' || p_counter_id || '_[a-z]+$')
        ORDER BY 1
    LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', v_trigger, v_track.table_name::regclass);
    END LOOP;
    EXECUTE format('DROP FUNCTION IF EXISTS tally.%I()', '_tracked_' || p_counter_id);
    DELETE FROM tally.tracked_log AS l WHERE l.counter_id = p_counter_id;
    IF EXISTS (
        SELECT 1 FROM tally.sources AS s
        WHERE s.counter_id = p_counter_id AND s.query LIKE '/* tally.track_table */%'
    ) THEN
        DELETE FROM tally.sources AS s WHERE s.counter_id = p_counter_id;
        EXECUTE format('DROP FUNCTION IF EXISTS tally.%I(text)', 'source_' || p_counter_id);
    END IF;
    DELETE FROM tally.tracked_tables AS t WHERE t.counter_id = p_counter_id;
    PERFORM set_config('tally.tracking_ddl', coalesce(v_was, 'off'), true);
END;
$$;

COMMENT ON FUNCTION tally._untrack(integer) IS
'Internal: stop counting a tracked table (triggers, trigger function, log, its source); the counter stays.';
