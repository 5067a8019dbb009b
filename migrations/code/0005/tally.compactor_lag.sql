-- tally.compactor_lag: per delta shard, how much is waiting to be folded,
-- how long the oldest pending increment has waited, and when the last
-- successful fold ended. Writers append to the active generation; the
-- compactor drains and truncates the inactive one, then flips.
CREATE OR REPLACE VIEW tally.compactor_lag AS
WITH shards AS (
    SELECT
        c.relname::text AS shard_table,
        c.relpersistence,
        substring(pg_catalog.pg_get_expr(c.relpartbound, c.oid) FROM 'IN \(''?(\d+)')::smallint AS shard
    FROM pg_catalog.pg_inherits AS i
    INNER JOIN pg_catalog.pg_class AS c ON i.inhrelid = c.oid
    WHERE i.inhparent = 'tally.delta'::regclass
),

pending AS (
    SELECT
        d.shard,
        count(*) AS pending_deltas,
        min(d.written_at) AS oldest_written_at
    FROM tally.delta AS d
    GROUP BY d.shard
),

last_fold AS (
    SELECT max(r.finished_at) AS finished_at
    FROM tally.fold_runs AS r
    WHERE r.outcome = 'ok'
)

SELECT
    s.shard,
    s.shard_table,
    CASE s.relpersistence WHEN 'u' THEN 'fast' ELSE 'durable' END AS durability,
    s.shard / 8 = w.gen AS active,
    coalesce(p.pending_deltas, 0) AS pending_deltas,
    now() - p.oldest_written_at AS oldest_pending_age,
    l.finished_at AS last_fold_at
FROM shards AS s
LEFT JOIN pending AS p ON s.shard = p.shard
CROSS JOIN last_fold AS l
CROSS JOIN tally.write_gen AS w
ORDER BY s.shard;

COMMENT ON VIEW tally.compactor_lag IS
'Per delta shard: generation active or not, pending deltas, age of the oldest pending increment, last successful fold.';
