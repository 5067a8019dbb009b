-- tally._record_fold: append a failed or retried compactor attempt, or a
-- maintenance run (p_mode 'maintenance'), to tally.fold_runs and count
-- failures in tally.fold_stats, which keeps the totals after fold_runs is
-- pruned. Successful folds are recorded by the fold itself, in its own
-- transaction. Called by tally.compact_step and tally.maintain only.
CREATE OR REPLACE FUNCTION tally._record_fold(
    p_started_at timestamptz,
    p_deltas bigint,
    p_attempts integer,
    p_outcome text,
    p_error text,
    p_mode text DEFAULT NULL
)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO tally.fold_runs (started_at, deltas, attempts, outcome, mode, error)
    VALUES (p_started_at, p_deltas, p_attempts, p_outcome, p_mode, p_error);
    UPDATE tally.fold_stats SET
        retried_deadlocks = retried_deadlocks
        + (p_outcome = 'retried' AND coalesce(p_error, '') LIKE '40P01%')::integer,
        retried_other = retried_other
        + (p_outcome = 'retried' AND coalesce(p_error, '') NOT LIKE '40P01%')::integer,
        abandoned = abandoned + (p_outcome = 'failed' AND p_mode IS DISTINCT FROM 'maintenance')::integer;
END;

COMMENT ON FUNCTION tally._record_fold(timestamptz, bigint, integer, text, text, text) IS
'Internal: record a failed or retried compactor attempt, or a maintenance run, in tally.fold_runs and tally.fold_stats.';
