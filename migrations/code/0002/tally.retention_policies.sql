-- tally.retention_policies: for every counter and granularity it keeps, how
-- long buckets are kept, where that comes from, and the oldest bucket kept now.
CREATE OR REPLACE VIEW tally.retention_policies AS
SELECT
    c.name AS counter,
    g.name AS granularity,
    tally._keep(c.id, g.name) AS keep,
    CASE WHEN r.counter_id IS NULL THEN 'default' ELSE 'counter' END AS set_by,
    tally._cutoff(c.id, g.name) AS oldest_bucket_kept
FROM tally.counters AS c
INNER JOIN tally.granularities AS g ON c.granularities @> ARRAY[g.name]
LEFT JOIN tally.retention AS r ON c.id = r.counter_id AND g.name = r.granularity
ORDER BY c.name, g.ord;

COMMENT ON VIEW tally.retention_policies IS
'Per counter and granularity: retention (NULL: forever), where it is set, and the oldest bucket kept now.';
