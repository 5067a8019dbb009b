-- tally.compact_step: one compactor step, as CALL tally.compact() and
-- tally.compact_loop() run them (each in its own transaction, committed by
-- the procedure): in a subtransaction, records a crash reset first if one
-- happened (tally._detect_crash_reset), then runs tally._fold_step. A step
-- that fails is rolled back to that subtransaction (its deltas stay
-- pending), recorded in tally.fold_runs and tally.fold_stats, and reported
-- as action 'retry' (a transient error: deadlock, serialization failure,
-- lock timeout, statement timeout, while p_attempt < p_max_attempts),
-- 'cancelled' or 'failed', with its SQLSTATE and message.
-- On a distributed install every statement of the step reaches a worker
-- over one connection (citus.max_adaptive_executor_pool_size), so all of
-- them, the crash check included, share that worker's REPEATABLE READ
-- snapshot, and the step commits with one prepared transaction per worker.
-- A cancel (pg_cancel_backend, or a client such as `tally compact --loop`
-- giving up on a call when it stops) is not retried: the step is rolled
-- back, recorded as 'retried' (its deltas wait for the next call, nothing
-- failed) and reported as action 'cancelled', so the call stops; a
-- statement_timeout is retried (it fires once per CALL).
-- pg_partman sets search_path for the whole session when it makes a
-- partition; the caller's (p_search_path, taken at the call site) is put
-- back, so nothing is left on a pooled connection.
-- It never raises for a failed step: the caller decides (compact raises,
-- compact_loop goes on). Its record is written here, by the step itself, so
-- nobody can write fold history without folding. With p_slices > 1 it
-- folds only slice p_slice (tally._slice), beside compactors folding the
-- other slices, and reports 'waiting' while only other slices' deltas are
-- left in the inactive generation.
CREATE OR REPLACE FUNCTION tally.compact_step(
    p_max_deltas integer DEFAULT 1000000,
    p_flip_until bigint DEFAULT NULL,
    p_attempt integer DEFAULT 1,
    p_max_attempts integer DEFAULT 5,
    p_max_gen_age interval DEFAULT NULL,
    p_slice integer DEFAULT 0,
    p_slices integer DEFAULT 1,
    p_search_path text DEFAULT pg_catalog.current_setting('search_path')
)
RETURNS TABLE (action text, folded bigint, flips bigint, sqlstate text, error text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET citus.max_adaptive_executor_pool_size = '1'  -- noqa: PRS
AS $$
DECLARE
    c_fn constant text := 'tally.compact_step';
    -- deadlock_detected, serialization_failure, lock_not_available,
    -- query_canceled (statement_timeout)
    c_retryable constant text[] := ARRAY['40P01', '40001', '55P03', '57014'];
    v_started timestamptz := clock_timestamp();
    v_state text;
    v_message text;
    v_retry boolean;
    v_cancel boolean;
BEGIN
    PERFORM tally._coordinator_only(c_fn);
    IF p_max_deltas IS NULL OR p_max_deltas < 1 THEN
        RAISE EXCEPTION '%: p_max_deltas % must be at least 1', c_fn, coalesce(p_max_deltas::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'deltas per fold transaction; the default is 1000000';
    END IF;
    IF p_attempt IS NULL OR p_attempt < 1 OR p_max_attempts IS NULL OR p_max_attempts < 1 THEN
        RAISE EXCEPTION '%: attempt % of % is not a valid attempt', c_fn,
            coalesce(p_attempt::text, 'NULL'), coalesce(p_max_attempts::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'attempts count from 1; the default maximum is 5';
    END IF;
    PERFORM tally._check_slice(c_fn, p_slice, p_slices);
    BEGIN
        -- In the subtransaction: on a distributed install it reads every
        -- worker, and a worker that is down fails the step (recorded, and
        -- compact_loop goes on) instead of the whole compactor.
        PERFORM tally._detect_crash_reset();
        RETURN QUERY
        SELECT s.action, s.folded, s.flips, NULL::text, NULL::text
        FROM tally._fold_step(p_max_deltas, p_flip_until, p_attempt, p_max_gen_age, p_slice, p_slices) AS s;
        IF p_search_path IS NOT NULL THEN
            PERFORM set_config('search_path', p_search_path, false);
        END IF;
        RETURN;
    EXCEPTION WHEN OTHERS OR query_canceled THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
    END;
    -- A cancel that is not the statement_timeout (which fires once the CALL
    -- has run that long, statement_timestamp() being the CALL's start).
    v_cancel := v_state = '57014' AND (current_setting('statement_timeout')::interval = interval '0'
                OR clock_timestamp() - statement_timestamp() < current_setting('statement_timeout')::interval);
    v_retry := v_state = ANY (c_retryable) AND p_attempt < p_max_attempts AND NOT v_cancel;
    PERFORM tally._record_fold(v_started, 0, p_attempt, CASE WHEN v_retry OR v_cancel THEN 'retried' ELSE 'failed' END,
                               format('%s: %s', v_state, v_message));
    RETURN QUERY SELECT CASE WHEN v_cancel THEN 'cancelled' WHEN v_retry THEN 'retry' ELSE 'failed' END, 0::bigint,
                        (SELECT w.flips FROM tally.write_gen AS w), v_state, v_message;
END;
$$;

COMMENT ON FUNCTION tally.compact_step(integer, bigint, integer, integer, interval, integer, integer, text) IS
'One compactor step (what tally.compact runs in a loop): fold (slice p_slice of p_slices, beside the other slices), '
'reclaim or flip; a failure is rolled back, recorded and reported as retry/failed, never raised.';
