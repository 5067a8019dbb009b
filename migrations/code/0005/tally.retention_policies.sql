-- tally.retention_policies: for every counter and granularity it keeps, how
-- long buckets are kept, where that comes from, and the oldest bucket kept now.
-- (The same rule as tally._keep and tally._cutoff, written out here so that
-- a reader of the view needs no EXECUTE on tally's internal functions.)
CREATE OR REPLACE VIEW tally.retention_policies AS
WITH kept AS (
    SELECT
        c.name AS counter,
        g.name AS granularity,
        g.ord,
        CASE WHEN r.counter_id IS NULL THEN g.default_retention ELSE r.keep END AS keep,
        CASE WHEN r.counter_id IS NULL THEN 'default' ELSE 'counter' END AS set_by
    FROM tally.counters AS c
    INNER JOIN tally.granularities AS g ON c.granularities @> ARRAY[g.name]
    LEFT JOIN tally.retention AS r ON c.id = r.counter_id AND g.name = r.granularity
)

SELECT
    k.counter,
    k.granularity,
    k.keep,
    k.set_by,
    coalesce(date_trunc(k.granularity, now() - k.keep, 'UTC'), '-infinity'::timestamptz) AS oldest_bucket_kept
FROM kept AS k
ORDER BY k.counter, k.ord;

COMMENT ON VIEW tally.retention_policies IS
'Per counter and granularity: retention (NULL: forever), where it is set, and the oldest bucket kept now.';
