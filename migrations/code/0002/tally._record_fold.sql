-- tally._record_fold: append a failed or retried compactor attempt to
-- tally.fold_runs (successful folds are recorded by tally._fold_step in the
-- fold's own transaction) and count it in tally.fold_stats, which keeps the
-- totals after fold_runs is pruned. Called by the compactor, which runs as
-- its caller and cannot write there itself.
CREATE OR REPLACE FUNCTION tally._record_fold(
    p_started_at timestamptz,
    p_deltas bigint,
    p_attempts integer,
    p_outcome text,
    p_error text
)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO tally.fold_runs (started_at, deltas, attempts, outcome, error)
    VALUES (p_started_at, p_deltas, p_attempts, p_outcome, p_error);
    UPDATE tally.fold_stats SET
        retried_deadlocks = retried_deadlocks
        + (p_outcome = 'retried' AND coalesce(p_error, '') LIKE '40P01%')::integer,
        retried_other = retried_other
        + (p_outcome = 'retried' AND coalesce(p_error, '') NOT LIKE '40P01%')::integer,
        abandoned = abandoned + (p_outcome = 'failed')::integer;
END;

COMMENT ON FUNCTION tally._record_fold(timestamptz, bigint, integer, text, text) IS
'Internal: record a failed or retried compactor attempt in tally.fold_runs and tally.fold_stats.';
