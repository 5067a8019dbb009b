-- tally.counter_status: one row per counter, what `tally status` shows:
-- its durability, the granularities it keeps, how many of its deltas wait
-- to be folded and how long the oldest has waited. It lets a monitoring
-- login holding only tally_reader see the counters without reading
-- tally.counters or the delta shards.
CREATE OR REPLACE VIEW tally.counter_status AS
WITH pending AS (
    SELECT
        d.counter_id,
        count(*) AS pending_deltas,
        min(d.written_at) AS oldest_written_at
    FROM tally.delta AS d
    GROUP BY d.counter_id
)

SELECT
    c.name AS counter,
    CASE WHEN c.durable THEN 'durable' ELSE 'fast' END AS durability,
    c.granularities,
    coalesce(p.pending_deltas, 0) AS pending_deltas,
    now() - p.oldest_written_at AS oldest_pending_age,
    c.created_at
FROM tally.counters AS c
LEFT JOIN pending AS p ON c.id = p.counter_id
ORDER BY c.name;

COMMENT ON VIEW tally.counter_status IS
'Per counter: durability, granularities kept, pending deltas and the age of the oldest, created at.';
