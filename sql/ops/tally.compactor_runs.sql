-- tally.compactor_runs: recent compactor folds (kept 7 days), newest first:
-- when, how long, how many deltas, after how many attempts, the outcome
-- ('ok', 'retried': an attempt rolled back and retried, 'failed': given up,
-- its deltas left pending), the error, the shard and the mode.
CREATE OR REPLACE VIEW tally.compactor_runs AS
SELECT
    r.id,
    r.started_at,
    r.finished_at - r.started_at AS duration,
    r.deltas,
    r.attempts,
    r.outcome,
    r.error,
    r.shard,
    r.mode
FROM tally.fold_runs AS r
ORDER BY r.id DESC;

COMMENT ON VIEW tally.compactor_runs IS
'Recent folds: start, duration, deltas folded, attempts, outcome (ok/retried/failed), error, shard, mode.';
