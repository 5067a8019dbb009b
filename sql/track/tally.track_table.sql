-- tally.track_table: keep a counter equal, for every key, to the number of
-- rows of a table with that key in p_key_column (NULL and empty keys are
-- not counted), or to the sum of p_sum_column over them; with p_at_column
-- a row's timestamp picks its buckets (a row with none is not counted),
-- else the time of the change; with p_where only rows where that boolean
-- expression over the row holds count (tally._track_where). Statement
-- triggers on the table append one delta per (key, minute) per statement
-- (tally._track_install): no shared row is updated, so they never wait on
-- or deadlock with each other. The counter must have no data yet, and
-- counts one table. Its source of truth is registered (tally.sources), as
-- the caller, for tally.check_drift.
--
-- The rows already there are counted in this transaction, exactly, and
-- the count (or sum) returned; the table's writers wait for that scan
-- (CREATE TRIGGER's lock is held until commit). With p_online the
-- triggers are installed and NULL returned: commit, then
-- tally.backfill_tracked() counts the rows while writers go on (both in
-- one call: CALL tally.track_table_online(...)). READ COMMITTED only: an
-- older snapshot would miss rows committed before the lock.
CREATE OR REPLACE FUNCTION tally.track_table(
    p_counter text,
    p_table regclass,
    p_key_column name,
    p_at_column name DEFAULT NULL,
    p_sum_column name DEFAULT NULL,
    p_where text DEFAULT NULL,
    p_online boolean DEFAULT FALSE
)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.track_table';
    v_counter tally.counters := tally._lookup_counter(c_fn, p_counter);
    v_cols record;
    v_where text;
    v_other text;
BEGIN
    IF tally._distributed() THEN
        RAISE EXCEPTION '%: tracked tables are not supported on a distributed (Citus) install yet', c_fn
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'call tally.increment_counters from the application there';
    END IF;
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION '%: the rows of % are counted in READ COMMITTED only, not %', c_fn, p_table,
            upper(current_setting('transaction_isolation'))
            USING ERRCODE = 'invalid_transaction_state',
                  HINT = 'an older snapshot would miss rows committed before the triggers: call it in READ COMMITTED';
    END IF;
    SELECT * INTO v_cols FROM tally._track_check(c_fn, p_table, p_key_column, p_at_column, p_sum_column);
    -- (the triggers and the backfill read the table with tally's
    -- privileges: the caller must have them on it already)
    IF NOT (has_table_privilege(session_user, p_table, 'SELECT')
            AND has_table_privilege(session_user, p_table, 'TRIGGER')) THEN
        RAISE EXCEPTION '%: % may not read table % and put triggers on it', c_fn, session_user, p_table
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('GRANT SELECT, TRIGGER ON %s TO %I (or track it as its owner)', p_table, session_user);
    END IF;
    v_where := tally._track_where(c_fn, p_table, p_where);
    SELECT t.table_name::regclass::text INTO v_other
    FROM tally.tracked_tables AS t WHERE t.counter_id = v_counter.id FOR UPDATE;
    IF FOUND THEN
        RAISE EXCEPTION '%: counter "%" already counts table %', c_fn, p_counter, v_other
            USING ERRCODE = 'duplicate_object',
                  HINT = 'a counter counts one table: create another counter, or untrack it first';
    END IF;
    IF tally._has_data(v_counter) THEN
        RAISE EXCEPTION '%: counter "%" already has data', c_fn, p_counter
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'a tracked counter counts the table''s rows and nothing else: create a new counter for it';
    END IF;
    INSERT INTO tally.tracked_tables AS t (
        counter_id, table_name, key_column, key_type, at_column, sum_column, sum_type, predicate, state
    )
    VALUES (
        v_counter.id, p_table, v_cols.key_column, v_cols.key_type, v_cols.at_column,
        v_cols.sum_column, v_cols.sum_type, v_where, CASE WHEN p_online THEN 'backfilling' ELSE 'active' END
    );
    -- (CREATE TRIGGER waits for the table's writers in flight and holds
    -- theirs off until commit: every later change fires the triggers)
    PERFORM tally._track_install(v_counter.id, session_user);
    IF p_online THEN
        RETURN NULL;
    END IF;
    RETURN tally._track_backfill(v_counter.id);
END;
$$;

COMMENT ON FUNCTION tally.track_table(text, regclass, name, name, name, text, boolean) IS
'Keep a counter equal to the rows (or a column''s sum) of a table per key, by statement triggers; counts the rows '
'there and returns that (p_online: later, by tally.backfill_tracked).';
