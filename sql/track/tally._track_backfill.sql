-- tally._track_backfill: count the rows a tracked table held before its
-- triggers counted (tally._track_sql 'BACKFILL'), append them as deltas
-- (the bulk slot), and end the backfill: state 'active', the count or sum
-- in backfilled, the log emptied, the trigger function made again without
-- logging. Returns the count or sum.
--
-- Exact whenever it runs, in one READ COMMITTED statement: every row change
-- the triggers counted and that statement's snapshot sees was logged by the
-- same transaction, so "rows seen less changes logged and seen" is the
-- table as it was when the triggers came (their CREATE TRIGGER waited for
-- every writer then). The caller holds a lock on the table that keeps
-- TRUNCATE out, taken before that statement's snapshot.
CREATE OR REPLACE FUNCTION tally._track_backfill(p_counter_id integer)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_track tally.tracked_tables;
    v_counter tally.counters;
    v_total bigint;
BEGIN
    SELECT t.* INTO STRICT v_track FROM tally.tracked_tables AS t WHERE t.counter_id = p_counter_id;
    SELECT c.* INTO STRICT v_counter FROM tally.counters AS c WHERE c.id = p_counter_id;
    EXECUTE tally._track_sql(v_track, 'BACKFILL', '$1', '$2', false)
    INTO v_total USING v_counter.durable, v_counter.time_zone;
    DELETE FROM tally.tracked_log AS l WHERE l.counter_id = p_counter_id;
    UPDATE tally.tracked_tables AS t SET state = 'active', backfilled = v_total WHERE t.counter_id = p_counter_id;
    IF v_track.state = 'backfilling' THEN
        PERFORM tally._track_install(p_counter_id, NULL);
    END IF;
    RETURN v_total;
END;
$$;

COMMENT ON FUNCTION tally._track_backfill(integer) IS
'Internal: count the rows a tracked table held before its triggers, exactly, and end its backfill.';
