-- tally.backfill_tracked: count the rows a table tracked with p_online held
-- before its triggers (tally._track_backfill), while its writers go on:
-- only TRUNCATE waits for the scan. Returns the count (or sum); for a table
-- counted already, what was counted then. Call it in a transaction after
-- the one of tally.track_table(..., p_online => true), READ COMMITTED.
CREATE OR REPLACE FUNCTION tally.backfill_tracked(p_counter text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.backfill_tracked';
    v_counter tally.counters := tally._lookup_counter(c_fn, p_counter);
    v_track tally.tracked_tables;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION '%: the rows are counted in READ COMMITTED only, not %', c_fn,
            upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'a snapshot older than the lock on the table could see it before a TRUNCATE';
    END IF;
    SELECT t.* INTO v_track FROM tally.tracked_tables AS t WHERE t.counter_id = v_counter.id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION '%: counter "%" counts no table', c_fn, p_counter
            USING ERRCODE = 'undefined_object',
                  HINT = 'track one first: tally.track_table(counter, table, key column, p_online => true)';
    END IF;
    IF v_track.state = 'active' THEN
        RETURN v_track.backfilled;
    END IF;
    EXECUTE format('LOCK TABLE %s IN ACCESS SHARE MODE', v_track.table_name::regclass);
    RETURN tally._track_backfill(v_counter.id);
END;
$$;

COMMENT ON FUNCTION tally.backfill_tracked(text) IS
'Count the rows a table tracked online held before its triggers, exactly, while its writers go on; returns that.';
