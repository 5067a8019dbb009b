-- tally._fold_step: one step of the compactor, in the caller's transaction,
-- under the fold lock (folds are serialized: one fold writes rollups at a time).
--
-- Writers append to the active generation of delta shards. A step drains the
-- other, inactive generation one shard at a time:
--   * truncate mode (a shard holding at most p_limit deltas): read the shard,
--     add it to the rollups, then take ACCESS EXCLUSIVE on it (lock_timeout
--     50ms, so it never queues writers or readers for long and gives up
--     before any deadlock check), check no straggler arrived since the read,
--     and TRUNCATE it: no dead tuples, no vacuum needed;
--   * delete mode (a bigger shard, or the lock/straggler check failed):
--     DELETE ... RETURNING up to p_limit deltas and add those.
-- Once the inactive generation is empty the step flips the generations
-- (when the flip counter is still <= p_flip_until, or always when it is
-- NULL), or reports 'idle'. p_attempt is recorded with the fold. Returns what it did; folds are also recorded in
-- tally.fold_runs. Adding and removing are one transaction: a delta is
-- either pending or folded, never both, never neither.
CREATE OR REPLACE FUNCTION tally._fold_step(
    p_limit integer,
    p_flip_until bigint DEFAULT NULL,
    p_attempt integer DEFAULT 1
)
RETURNS TABLE (action text, folded bigint, flips bigint, shard text, mode text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    v_started timestamptz := clock_timestamp();
    v_gen tally.write_gen;
    v_rel regclass;
    v_rows bigint := 0;
    v_now bigint;
    v_folded bigint;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'tally._fold_step: limit % must be a positive number of deltas', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'the default is 100000';
    END IF;
    PERFORM pg_advisory_xact_lock(tally._fold_lock_key());
    SELECT w.* INTO v_gen FROM tally.write_gen AS w;

    -- The first inactive shard holding deltas, and how many (up to limit + 1).
    FOR v_rel IN
        SELECT i.inhrelid::regclass
        FROM pg_catalog.pg_inherits AS i
        JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'tally.delta'::regclass
          AND c.relname LIKE format('delta\_g%s\_%%', 1 - v_gen.gen)
        ORDER BY c.relname
    LOOP
        EXECUTE format('SELECT count(*) FROM (SELECT FROM %s LIMIT $1) AS s', v_rel)
        INTO v_rows USING p_limit::bigint + 1;
        EXIT WHEN v_rows > 0;
    END LOOP;

    IF v_rows = 0 THEN
        IF p_flip_until IS NULL OR v_gen.flips <= p_flip_until THEN
            UPDATE tally.write_gen AS w
            SET gen = 1 - w.gen, flips = w.flips + 1, flipped_at = now()
            RETURNING w.* INTO v_gen;
            RETURN QUERY SELECT 'flipped'::text, 0::bigint, v_gen.flips, NULL::text, NULL::text;
        ELSE
            RETURN QUERY SELECT 'idle'::text, 0::bigint, v_gen.flips, NULL::text, NULL::text;
        END IF;
        RETURN;
    END IF;

    IF v_rows <= p_limit THEN
        BEGIN
            EXECUTE format(
                'INSERT INTO tally.fold_batch (counter_id, key, minute, delta, n)
                 SELECT d.counter_id, d.key, date_trunc(''minute'', d.at), sum(d.delta), count(*)
                 FROM %s AS d
                 GROUP BY 1, 2, 3', v_rel);
            v_folded := (SELECT coalesce(sum(b.n), 0) FROM tally.fold_batch AS b);
            PERFORM tally._apply_batch();
            PERFORM set_config('lock_timeout', '50ms', true);
            EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v_rel);
            EXECUTE format('SELECT count(*) FROM %s', v_rel) INTO v_now;
            IF v_now <> v_folded THEN
                RAISE EXCEPTION 'tally._fold_step: % straggler deltas arrived in %', v_now - v_folded, v_rel
                    USING ERRCODE = 'TY001';
            END IF;
            EXECUTE format('TRUNCATE %s', v_rel);
            INSERT INTO tally.fold_runs (started_at, deltas, attempts, outcome, shard, mode)
            VALUES (v_started, v_folded, p_attempt, 'ok', v_rel::text, 'truncate');
            RETURN QUERY SELECT 'folded'::text, v_folded, v_gen.flips, v_rel::text, 'truncate'::text;
            RETURN;
        EXCEPTION WHEN lock_not_available OR SQLSTATE 'TY001' THEN
            -- rolled back to the start of this block: fold it in delete mode
            NULL;
        END;
    END IF;

    EXECUTE format(
        'WITH moved AS (
             DELETE FROM %1$s AS d
             WHERE d.ctid = ANY (ARRAY(SELECT s.ctid FROM %1$s AS s LIMIT $1))
             RETURNING d.counter_id, d.key, d.delta, d.at)
         INSERT INTO tally.fold_batch (counter_id, key, minute, delta, n)
         SELECT m.counter_id, m.key, date_trunc(''minute'', m.at), sum(m.delta), count(*)
         FROM moved AS m
         GROUP BY 1, 2, 3', v_rel)
    USING p_limit;
    v_folded := (SELECT coalesce(sum(b.n), 0) FROM tally.fold_batch AS b);
    PERFORM tally._apply_batch();
    INSERT INTO tally.fold_runs (started_at, deltas, attempts, outcome, shard, mode)
    VALUES (v_started, v_folded, p_attempt, 'ok', v_rel::text, 'delete');
    RETURN QUERY SELECT 'folded'::text, v_folded, v_gen.flips, v_rel::text, 'delete'::text;
END;
$$;

COMMENT ON FUNCTION tally._fold_step(integer, bigint, integer) IS
'Internal: one compactor step under the fold lock: drain one inactive delta shard (TRUNCATE when possible), or flip generations.';
