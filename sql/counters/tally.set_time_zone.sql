-- tally.set_time_zone: change the time zone whose wall clock a counter's
-- buckets follow, while the counter has no data yet (no pending delta, no
-- total, no bucket, nothing set aside): buckets already folded in one zone
-- cannot be cut again in another. Holds the fold lock, so no fold is
-- folding the counter under the old zone meanwhile.
CREATE OR REPLACE FUNCTION tally.set_time_zone(p_counter text, p_time_zone text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.set_time_zone';
    v_counter tally.counters := tally._lookup_counter(c_fn, p_counter);
    v_zone text := tally._time_zone(c_fn, p_time_zone);
BEGIN
    PERFORM tally._coordinator_only(c_fn);
    IF v_zone = v_counter.time_zone THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(tally._fold_lock_key());
    IF tally._has_data(v_counter) THEN
        RAISE EXCEPTION '%: counter "%" already has data in time zone %', c_fn, p_counter, v_counter.time_zone
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = format('buckets folded in one zone cannot be cut again in another: create a new counter'
                                ' with p_time_zone => %L', v_zone);
    END IF;
    UPDATE tally.counters AS c SET time_zone = v_zone WHERE c.id = v_counter.id;
    -- (a table it counts: its trigger function cuts minutes in the zone)
    IF EXISTS (SELECT 1 FROM tally.tracked_tables AS t WHERE t.counter_id = v_counter.id) THEN
        PERFORM tally._track_install(v_counter.id, NULL);
    END IF;
END;
$$;

COMMENT ON FUNCTION tally.set_time_zone(text, text) IS
'Change the time zone of a counter''s buckets, while it has no data yet.';
