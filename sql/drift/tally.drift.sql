-- tally.drift: per counter, the latest drift check (tally.check_drift): how
-- many keys were checked, how many did not add up internally, how many
-- differ from the registered source of truth (NULL without one) and by how
-- much at most. Checks run in the background, never per event.
CREATE OR REPLACE VIEW tally.drift AS
SELECT
    c.name AS counter,
    s.query IS NOT NULL AS has_source,
    r.checked_at,
    r.keys_checked,
    r.inconsistent_keys,
    r.drifting_keys,
    r.max_abs_drift
FROM tally.counters AS c
LEFT JOIN tally.sources AS s ON c.id = s.counter_id
LEFT JOIN LATERAL (
    SELECT
        dr.checked_at,
        dr.keys_checked,
        dr.inconsistent_keys,
        dr.drifting_keys,
        dr.max_abs_drift
    FROM tally.drift_runs AS dr
    WHERE dr.counter_id = c.id
    ORDER BY dr.checked_at DESC, dr.id DESC
    LIMIT 1
) AS r ON TRUE
ORDER BY c.name;

COMMENT ON VIEW tally.drift IS
'Per counter: the latest drift check (keys checked, internally inconsistent keys, keys off the source of truth).';
