-- tally._claim_event: claim one event id of a counter for one increment
-- (of key p_key), on one node: what tally._claim_events does for a batch,
-- for a single pair in two small statements (an id counts once per
-- counter, whatever the key). Returns false if the id was applied within the
-- window, or is claimed by a transaction that commits first. PL/pgSQL, so
-- its statements' plans are kept for the session.
-- (A distributed install claims beside the key: tally._claim_event.citus.sql.)
CREATE OR REPLACE FUNCTION tally._claim_event(p_counter_id integer, p_key text, p_event_id text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
AS $$
DECLARE
    v_days date[];
    v_from date;
    v_n integer;
BEGIN
    SELECT b.days, b.window_from INTO v_days, v_from FROM tally._claim_bounds() AS b;
    IF cardinality(v_days) = 0 THEN
        PERFORM tally._no_event_partition('tally.increment_counter');
    END IF;
    -- Claimed in every partition named, unless applied in an older one of
    -- the window (one or two probes, once).
    INSERT INTO tally.event_ids (counter_id, event_id, seen_on)
    SELECT p_counter_id, p_event_id, d.d FROM unnest(v_days) AS d (d)
    WHERE NOT EXISTS (
        SELECT FROM tally.event_ids AS x
        WHERE
            x.counter_id = p_counter_id AND x.event_id = p_event_id
            AND x.seen_on >= v_from AND x.seen_on < v_days[cardinality(v_days)]
    )
    ORDER BY d.d
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n = cardinality(v_days);
END;
$$;

COMMENT ON FUNCTION tally._claim_event(integer, text, text) IS
'Internal: claim (counter, event id) for one increment of p_key; false if already applied within the window.';
