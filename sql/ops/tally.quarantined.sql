-- tally.quarantined: deltas set aside because folding them would overflow
-- bigint, per counter and key: how many, their sum, when. They are not
-- counted anywhere until someone deals with them (delete them, or re-apply
-- them deliberately with tally.increment_counter).
CREATE OR REPLACE VIEW tally.quarantined AS
SELECT
    c.name AS counter,
    q.key,
    count(*) AS deltas,
    sum(q.delta::numeric) AS delta_sum,
    min(q.quarantined_at) AS first_at,
    max(q.quarantined_at) AS last_at,
    max(q.reason) AS reason
FROM tally.quarantine AS q
LEFT JOIN tally.counters AS c ON q.counter_id = c.id
GROUP BY c.name, q.key
ORDER BY max(q.quarantined_at) DESC;

COMMENT ON VIEW tally.quarantined IS
'Deltas set aside because folding them would overflow bigint, per counter and key.';
