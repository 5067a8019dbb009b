-- tally._fold_step: one step of the compactor, in the caller's transaction,
-- under the fold lock (folds are serialized: one fold writes rollups at a
-- time, so two folds never wait on each other's rows).
--
-- Writers append to the active generation of delta shards; a step works on
-- the other, inactive one:
--   1. fold: the smallest inactive shard holding deltas gives up to p_limit of
--      them (DELETE ... RETURNING, MVCC-safe), pre-aggregated per minute and
--      added to the total and every granularity in the same transaction. A
--      shard left empty is marked drained by this transaction.
--   2. reclaim: otherwise, each inactive shard that is empty, was drained by
--      a transaction every snapshot in the cluster already sees as committed
--      (tally._invisible_to_all), and can be locked within 50 ms is
--      TRUNCATEd: its dead rows are invisible to everyone, so truncating is
--      unobservable, and no VACUUM is needed.
--   3. flip: once the inactive generation is empty the generations flip
--      (when the flip counter is still <= p_flip_until, or always when it is
--      NULL); otherwise the step reports 'idle'. They also flip ('rotated')
--      instead of folding when the active generation is older than
--      p_max_gen_age while the inactive one still holds a backlog (a large
--      backfill): live increments do not wait behind it, and it keeps
--      draining whenever its generation is inactive.
-- Adding and removing deltas happen in one transaction: a delta is either
-- pending or folded, never both, never neither. Folds are recorded in
-- tally.fold_runs with p_attempt.
CREATE OR REPLACE FUNCTION tally._fold_step(
    p_limit integer,
    p_flip_until bigint DEFAULT NULL,
    p_attempt integer DEFAULT 1,
    p_max_gen_age interval DEFAULT NULL
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
    v_found boolean := false;
    v_folded bigint;
    v_lock_timeout text;
    v_resume tid;
    v_last tid;
    v_poison bigint;
    v_rotate boolean;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'tally._fold_step: limit % must be a positive number of deltas', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'the default is 100000';
    END IF;
    PERFORM pg_advisory_xact_lock(tally._fold_lock_key());
    SELECT w.* INTO v_gen FROM tally.write_gen AS w;

    -- 1. fold the smallest inactive shard holding deltas (live stragglers
    -- before a backfill's backlog)
    FOR v_rel IN
        SELECT s.shard_table FROM tally.shards AS s
        WHERE s.shard_table::text LIKE format('tally.delta\_g%s\_%%', 1 - v_gen.gen)
        ORDER BY pg_relation_size(s.shard_table), s.shard_table::text
    LOOP
        EXECUTE format('SELECT EXISTS (SELECT FROM %s)', v_rel) INTO v_found;
        EXIT WHEN v_found;
    END LOOP;
    -- a backlog must not hold live increments back longer than p_max_gen_age
    v_rotate := v_found AND p_max_gen_age IS NOT NULL AND v_gen.flipped_at < now() - p_max_gen_age
                AND (p_flip_until IS NULL OR v_gen.flips <= p_flip_until);
    IF v_found AND NOT v_rotate THEN
        -- Resume where the last chunk of this shard stopped (a TID range
        -- scan), so a backlog drained in chunks is not rescanned from its
        -- dead head each time; from the start again once the end is reached.
        v_resume := (SELECT s.resume_at FROM tally.shards AS s WHERE s.shard_table = v_rel);
        BEGIN
            EXECUTE format(
                'WITH moved AS (
                     DELETE FROM %1$s AS d
                     WHERE d.ctid = ANY (ARRAY(SELECT s.ctid FROM %1$s AS s WHERE s.ctid >= $2 LIMIT $1))
                     RETURNING d.ctid, d.counter_id, d.key, d.delta, d.at),
                 batch AS (
                     INSERT INTO tally.fold_batch (counter_id, key, minute, delta, n)
                     SELECT m.counter_id, m.key, date_trunc(''minute'', m.at), sum(m.delta), count(*)
                     FROM moved AS m
                     GROUP BY 1, 2, 3)
                 SELECT count(*), max(m.ctid) FROM moved AS m', v_rel)
            INTO v_folded, v_last
            USING p_limit, v_resume;
            PERFORM tally._apply_batch();
        EXCEPTION WHEN numeric_value_out_of_range THEN
            -- Poison: deltas whose sums would overflow bigint. The chunk is
            -- rolled back; set those deltas aside (tally.quarantine) so they
            -- never wedge the fold, and fold the rest in the next step.
            v_poison := tally._quarantine_overflow(v_rel);
            IF v_poison = 0 THEN
                RAISE;
            END IF;
            RETURN QUERY SELECT 'quarantined'::text, v_poison, v_gen.flips, v_rel::text, NULL::text;
            RETURN;
        END;
        UPDATE tally.shards AS s
        SET resume_at = CASE WHEN v_folded < p_limit THEN '(0,0)'::tid ELSE v_last END
        WHERE s.shard_table = v_rel;
        EXECUTE format('SELECT EXISTS (SELECT FROM %s)', v_rel) INTO v_found;
        IF NOT v_found THEN
            UPDATE tally.shards AS s SET drained_xid = pg_current_xact_id(), drained_at = now()
            WHERE s.shard_table = v_rel;
        END IF;
        INSERT INTO tally.fold_runs (started_at, deltas, attempts, outcome, shard, mode)
        VALUES (v_started, v_folded, p_attempt, 'ok', v_rel::text, 'delete');
        RETURN QUERY SELECT 'folded'::text, v_folded, v_gen.flips, v_rel::text, 'delete'::text;
        RETURN;
    END IF;

    -- 2. reclaim drained inactive shards whose dead rows nobody can see
    -- (not when rotating: the inactive generation still holds a backlog)
    v_lock_timeout := current_setting('lock_timeout');
    FOR v_rel IN
        SELECT s.shard_table FROM tally.shards AS s
        WHERE NOT v_rotate
          AND s.shard_table::text LIKE format('tally.delta\_g%s\_%%', 1 - v_gen.gen)
          AND tally._invisible_to_all(s.drained_xid)
        ORDER BY s.shard_table::text
    LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '50ms', true);
            EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', v_rel);
            PERFORM set_config('lock_timeout', v_lock_timeout, true);
            -- Under the lock no writer is mid-insert: any row visible now is
            -- a straggler that arrived after the drain; leave it for a fold.
            EXECUTE format('SELECT EXISTS (SELECT FROM %s)', v_rel) INTO v_found;
            IF NOT v_found THEN
                EXECUTE format('TRUNCATE %s', v_rel);
                UPDATE tally.shards AS s SET drained_xid = NULL, truncated_at = now(), resume_at = '(0,0)'
                WHERE s.shard_table = v_rel;
                INSERT INTO tally.fold_runs (started_at, deltas, attempts, outcome, shard, mode)
                VALUES (v_started, 0, p_attempt, 'ok', v_rel::text, 'truncate');
            END IF;
        EXCEPTION WHEN lock_not_available THEN
            PERFORM set_config('lock_timeout', v_lock_timeout, true);  -- busy: next step
        END;
    END LOOP;

    -- 3. the inactive generation is empty (or a backlog is overdue): flip,
    -- or report idle
    IF p_flip_until IS NULL OR v_gen.flips <= p_flip_until THEN
        UPDATE tally.write_gen AS w
        SET gen = 1 - w.gen, flips = w.flips + 1, flipped_at = now()
        RETURNING w.* INTO v_gen;
        RETURN QUERY SELECT CASE WHEN v_rotate THEN 'rotated' ELSE 'flipped' END,
                            0::bigint, v_gen.flips, NULL::text, NULL::text;
    ELSE
        RETURN QUERY SELECT 'idle'::text, 0::bigint, v_gen.flips, NULL::text, NULL::text;
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._fold_step(integer, bigint, integer, interval) IS
'Internal: one compactor step under the fold lock: fold one inactive delta shard, reclaim drained ones by TRUNCATE, or flip.';
