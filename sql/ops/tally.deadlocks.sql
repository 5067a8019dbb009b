-- tally.deadlocks: deadlocks in this database since tally was installed
-- (pg_stat_database, minus the baseline taken at install, or since the
-- statistics were last reset), and what tally's own folds met: deadlocks
-- and other transient failures they rolled back and retried, and folds
-- abandoned after the retry limit. With tally alone, all three are zero.
CREATE OR REPLACE VIEW tally.deadlocks AS
WITH db AS (
    SELECT
        d.deadlocks,
        d.stats_reset,
        -- statistics reset by hand (stats_reset moves) or by a crash (the
        -- counter restarts below the baseline, stats_reset stays NULL)
        coalesce(d.stats_reset, '-infinity') <> coalesce(b.stats_reset, '-infinity')
        OR d.deadlocks < b.deadlocks AS was_reset,
        b.deadlocks AS baseline,
        b.installed_at
    FROM pg_catalog.pg_stat_database AS d
    CROSS JOIN tally.install_baseline AS b
    WHERE d.datname = current_database()
)

SELECT
    db.installed_at,
    CASE WHEN db.was_reset THEN db.deadlocks ELSE greatest(db.deadlocks - db.baseline, 0) END AS database_deadlocks,
    CASE
        WHEN db.was_reset THEN coalesce(db.stats_reset, pg_postmaster_start_time()) ELSE db.installed_at
    END AS counted_since,
    s.retried_deadlocks AS fold_deadlocks_retried,
    s.retried_other AS fold_failures_retried,
    s.abandoned AS folds_abandoned
FROM db
CROSS JOIN tally.fold_stats AS s;

COMMENT ON VIEW tally.deadlocks IS
'Deadlocks in this database since install; deadlocks and other failures tally''s folds retried; folds abandoned.';
