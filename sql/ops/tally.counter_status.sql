-- tally.counter_status: one row per counter, what `tally status` shows:
-- its durability, the granularities it keeps, how many of its deltas wait
-- to be folded and how long the oldest has waited. It lets a monitoring
-- login holding only tally_reader see the counters without reading
-- tally.counters or the delta shards. pending_complete is false where
-- this node cannot see every pending delta of the counter: on a hot
-- standby, a fast counter's UNLOGGED pending deltas are not replicated, and
-- its reads there answer the folded value plus the logged pending deltas
-- (increments with an event id) only.
CREATE OR REPLACE VIEW tally.counter_status AS
WITH pending AS (
    SELECT
        p.counter,
        sum(p.deltas)::bigint AS pending_deltas,
        min(p.oldest_written_at) AS oldest_written_at
    FROM tally.pending_deltas() AS p
    GROUP BY p.counter
)

SELECT
    c.name AS counter,
    CASE WHEN c.durable THEN 'durable' ELSE 'fast' END AS durability,
    c.granularities,
    coalesce(p.pending_deltas, 0) AS pending_deltas,
    now() - p.oldest_written_at AS oldest_pending_age,
    c.created_at,
    c.durable OR NOT pg_catalog.pg_is_in_recovery() AS pending_complete
FROM tally.counters AS c
LEFT JOIN pending AS p ON c.name = p.counter
ORDER BY c.name;

COMMENT ON VIEW tally.counter_status IS
'Per counter: durability, granularities kept, pending deltas and the age of the oldest, created at, and whether '
'this node sees every pending delta (false on a hot standby for fast counters).';
