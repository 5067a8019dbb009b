-- tally._event_partitions: keep the daily partitions of tally.event_ids
-- (the idempotency store) from the start of the window to three days ahead,
-- and drop the days that fell out of the window; note each day's first
-- xid in tally.event_days. Runs from tally.maintain()
-- and at the start of every compactor loop (each minute under pg_cron), so
-- today's partition exists as long as either runs. A partition it cannot
-- lock within 200 ms is left for the next run. Returns what it did.
CREATE OR REPLACE FUNCTION tally._event_partitions()
RETURNS TABLE (step text, detail text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET lock_timeout = '200ms'
AS $$
DECLARE
    v_today date := now()::date;
    v_from date;
    v_day date;
    v_part record;
    v_created integer := 0;
    v_dropped integer := 0;
    v_skipped text[] := ARRAY[]::text[];
BEGIN
    SELECT v_today - s.event_window_days INTO v_from FROM tally.settings AS s;
    FOR v_day IN SELECT g::date FROM generate_series(v_from, v_today + 3, interval '1 day') AS g LOOP
        CONTINUE WHEN to_regclass(format('tally.event_ids_p%s', to_char(v_day, 'YYYYMMDD'))) IS NOT NULL;
        BEGIN
            EXECUTE format(
                'CREATE TABLE tally.%I PARTITION OF tally.event_ids FOR VALUES FROM (%L) TO (%L)',
                'event_ids_p' || to_char(v_day, 'YYYYMMDD'), v_day, v_day + 1);
            v_created := v_created + 1;
        EXCEPTION WHEN lock_not_available THEN
            v_skipped := v_skipped || v_day::text;
        END;
    END LOOP;
    -- The day is read from the name only after the name matched, in this
    -- loop and not in the query's WHERE: a plan may evaluate a filter on
    -- rows other than the children (every relation of pg_class), and a
    -- name that is not a date must never be cast.
    FOR v_part IN
        SELECT i.inhrelid::regclass AS rel, c.relname::text AS relname
        FROM pg_catalog.pg_inherits AS i
        JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'tally.event_ids'::regclass
        ORDER BY c.relname
    LOOP
        CONTINUE WHEN v_part.relname !~ '^event_ids_p[0-9]{8}$';
        CONTINUE WHEN to_date(right(v_part.relname, 8), 'YYYYMMDD') >= v_from;
        BEGIN
            EXECUTE format('DROP TABLE %s', v_part.rel);
            v_dropped := v_dropped + 1;
        EXCEPTION WHEN lock_not_available THEN
            v_skipped := v_skipped || v_part.relname;
        END;
    END LOOP;
    -- Day boundaries for tally._claim_days: this transaction's own xid, newer
    -- than that of any transaction that began before it ran on a new day
    -- (later than the true midnight boundary, so on the safe side); a day
    -- missed is filled the same way.
    INSERT INTO tally.event_days (day, first_xid)
    SELECT g::date, pg_current_xact_id()
    FROM generate_series(v_from, v_today, interval '1 day') AS g
    ON CONFLICT (day) DO NOTHING;
    DELETE FROM tally.event_days AS e WHERE e.day < v_from;
    step := 'event_ids';
    detail := format('window from %s: %s partitions created, %s dropped%s', v_from, v_created, v_dropped,
                     CASE WHEN cardinality(v_skipped) > 0
                          THEN format(', skipped (locked): %s', array_to_string(v_skipped, ' ')) ELSE '' END);
    RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION tally._event_partitions() IS
'Internal: create the idempotency store''s daily partitions for the window and 3 days ahead; drop older ones.';
