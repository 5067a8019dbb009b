-- tally._event_partitions: keep the partitions of tally.event_ids (the
-- idempotency store) from the start of the window to three days ahead, and
-- drop those wholly past the window; keep tally.event_days, the list of
-- partitions, true, and note each partition's first xid there once its first
-- day has begun. A new partition starts where the last one ends and spans
-- the window, up to 7 days: a claim's lookup then probes one or
-- two partitions whatever the window (tally._claim_events), and an id is
-- remembered for the window and at most 7 days more. A partition's range is
-- read from its bound, so one created or dropped by hand is seen as it is.
-- Runs from tally.maintain() and at the start of every compactor loop (each
-- minute under pg_cron), so today's partition exists as long as either
-- runs. A partition it cannot lock within 200 ms is left for the next run.
-- Returns what it did.
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
    v_window integer;
    v_from date;
    v_next date;
    v_part record;
    v_rels regclass[] := ARRAY[]::regclass[];
    v_firsts date[] := ARRAY[]::date[];
    v_nexts date[] := ARRAY[]::date[];
    v_created integer := 0;
    v_dropped integer := 0;
    v_skipped text[] := ARRAY[]::text[];
BEGIN
    SELECT s.event_window_days INTO v_window FROM tally.settings AS s;
    v_from := v_today - v_window;
    -- The partitions as they are, with the range each one's bound says.
    -- The bound is read only once the name matched, in this loop and not in
    -- the query's WHERE: a plan may evaluate a filter on rows other than the
    -- children (every relation of pg_class).
    FOR v_part IN
        SELECT
            i.inhrelid::regclass AS rel,
            c.relname::text AS relname,
            pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_catalog.pg_inherits AS i
        JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'tally.event_ids'::regclass
        ORDER BY c.relname
    LOOP
        CONTINUE WHEN v_part.relname !~ '^event_ids_p[0-9]{8}$'
            OR v_part.bound !~ '^FOR VALUES FROM \(''[0-9]{4}-[0-9]{2}-[0-9]{2}''\) TO \(''[0-9]{4}-[0-9]{2}-[0-9]{2}''\)$';
        v_rels := v_rels || v_part.rel;
        v_firsts := v_firsts || substring(v_part.bound FROM '^FOR VALUES FROM \(''([0-9-]+)''\)')::date;
        v_nexts := v_nexts || substring(v_part.bound FROM 'TO \(''([0-9-]+)''\)$')::date;
    END LOOP;
    -- Drop the partitions wholly past the window.
    FOR v_i IN 1 .. coalesce(cardinality(v_rels), 0) LOOP
        CONTINUE WHEN v_nexts[v_i] > v_from;
        BEGIN
            EXECUTE format('DROP TABLE %s', v_rels[v_i]);
            v_firsts[v_i] := NULL;
            v_dropped := v_dropped + 1;
        EXCEPTION WHEN lock_not_available THEN
            v_skipped := v_skipped || v_rels[v_i]::text;
        END;
    END LOOP;
    -- tally.event_days lists what is left, and every partition listed that
    -- is missing (dropped by hand) within the window is made again.
    DELETE FROM tally.event_days AS e WHERE e.next_day <= v_from;
    INSERT INTO tally.event_days (day, first_xid, next_day)
    SELECT p.first_day, NULL, p.next_day FROM unnest(v_firsts, v_nexts) AS p (first_day, next_day)
    WHERE p.first_day IS NOT NULL AND p.next_day > v_from
    ON CONFLICT (day) DO NOTHING;
    FOR v_part IN
        SELECT e.day, e.next_day FROM tally.event_days AS e
        WHERE e.day <> ALL (array_remove(v_firsts, NULL))
        ORDER BY e.day
    LOOP
        BEGIN
            EXECUTE format('CREATE TABLE tally.%I PARTITION OF tally.event_ids FOR VALUES FROM (%L) TO (%L)',
                           'event_ids_p' || to_char(v_part.day, 'YYYYMMDD'), v_part.day, v_part.next_day);
            v_created := v_created + 1;
        EXCEPTION WHEN lock_not_available THEN
            v_skipped := v_skipped || v_part.day::text;
        END;
    END LOOP;
    -- New partitions from where the last one ends (today, after a gap; the
    -- window's first day, when there is none) until one holds the day three
    -- days ahead.
    SELECT max(e.next_day) INTO v_next FROM tally.event_days AS e;
    v_next := CASE WHEN v_next IS NULL THEN v_from ELSE greatest(v_next, v_today) END;
    WHILE v_next <= v_today + 3 LOOP
        BEGIN
            EXECUTE format('CREATE TABLE tally.%I PARTITION OF tally.event_ids FOR VALUES FROM (%L) TO (%L)',
                           'event_ids_p' || to_char(v_next, 'YYYYMMDD'), v_next, v_next + least(v_window, 7));
            INSERT INTO tally.event_days (day, first_xid, next_day) VALUES (v_next, NULL, v_next + least(v_window, 7));
            v_created := v_created + 1;
        EXCEPTION WHEN lock_not_available THEN
            v_skipped := v_skipped || v_next::text;
            EXIT;
        END;
        v_next := v_next + least(v_window, 7);
    END LOOP;
    -- First xids for tally._claim_days: this transaction's own xid, newer
    -- than that of any transaction that began before it ran in the new
    -- partition's first day (later than the true boundary, so on the safe
    -- side).
    UPDATE tally.event_days AS e SET first_xid = pg_current_xact_id()
    WHERE e.first_xid IS NULL AND e.day <= v_today;
    step := 'event_ids';
    detail := format('window from %s: %s partitions created, %s dropped%s', v_from, v_created, v_dropped,
                     CASE WHEN cardinality(v_skipped) > 0
                          THEN format(', skipped (locked): %s', array_to_string(v_skipped, ' ')) ELSE '' END);
    RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION tally._event_partitions() IS
'Internal: keep the idempotency store''s partitions (up to 7 days each) for the window and 3 days ahead; drop older ones.';
