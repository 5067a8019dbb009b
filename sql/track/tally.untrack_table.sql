-- tally.untrack_table: stop counting a table (tally._untrack): its
-- triggers go, the counter keeps what it counted and stays readable (and
-- may be incremented, or dropped, as any other).
CREATE OR REPLACE FUNCTION tally.untrack_table(p_counter text, p_table regclass)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.untrack_table';
    v_counter tally.counters := tally._lookup_counter(c_fn, p_counter);
    v_track tally.tracked_tables;
BEGIN
    SELECT t.* INTO v_track FROM tally.tracked_tables AS t WHERE t.counter_id = v_counter.id FOR UPDATE;
    IF NOT FOUND OR v_track.table_name IS DISTINCT FROM p_table THEN
        RAISE EXCEPTION '%: counter "%" does not count table %', c_fn, p_counter, coalesce(p_table::text, 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = CASE WHEN FOUND THEN format('it counts table %s', v_track.table_name::regclass)
                              ELSE 'it counts no table' END;
    END IF;
    PERFORM tally._untrack(v_counter.id);
END;
$$;

COMMENT ON FUNCTION tally.untrack_table(text, regclass) IS
'Stop counting a table: its triggers go; the counter keeps what it counted.';
