-- tally.counter_value: the all-time total of a key: the folded total plus the
-- deltas not folded yet, read in one statement (one snapshot), so a fold
-- committing meanwhile is seen either wholly or not at all. O(1) in history:
-- one primary-key probe plus an index probe over the pending deltas.
-- On a hot standby the pending deltas are those of the logged shards
-- (durable counters, increments with an event id): a fast counter's
-- UNLOGGED pending deltas are not replicated, so there it answers the
-- folded value plus those (tally.counter_status.pending_complete says so).
-- A key with deltas set aside by a fold (they would overflow bigint) is
-- answered without them, with a WARNING naming tally.quarantined.
CREATE OR REPLACE FUNCTION tally.counter_value(p_counter text, p_key text)
RETURNS bigint
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id integer;
    v_value bigint;
    v_quarantined bigint;
BEGIN
    SELECT c.id INTO v_id FROM tally.counters AS c WHERE c.name = p_counter;
    IF NOT FOUND THEN
        PERFORM tally._lookup_counter('tally.counter_value', p_counter);
    END IF;
    IF NOT tally._valid_key(p_key) THEN
        PERFORM tally._check_key('tally.counter_value', p_key);
    END IF;
    IF NOT pg_is_in_recovery() THEN
        SELECT tally._as_bigint(
            'tally.counter_value', p_counter, p_key,
            coalesce((SELECT t.value FROM tally.totals AS t WHERE t.counter_id = v_id AND t.key = p_key), 0)::numeric
            + coalesce((SELECT sum(d.delta) FROM tally.delta AS d WHERE d.counter_id = v_id AND d.key = p_key), 0)
        ), (SELECT count(*) FROM tally.quarantine AS q WHERE q.counter_id = v_id AND q.key = p_key)
        INTO v_value, v_quarantined;
    ELSE
        -- The same statement over the logged shards only (a hot standby).
        SELECT tally._as_bigint(
            'tally.counter_value', p_counter, p_key,
            coalesce((SELECT t.value FROM tally.totals AS t WHERE t.counter_id = v_id AND t.key = p_key), 0)::numeric
            + coalesce((SELECT sum(d.delta) FROM tally.delta AS d
                        WHERE d.shard = ANY (tally._logged_shards()) AND d.counter_id = v_id AND d.key = p_key), 0)
        ), (SELECT count(*) FROM tally.quarantine AS q WHERE q.counter_id = v_id AND q.key = p_key)
        INTO v_value, v_quarantined;
    END IF;
    IF v_quarantined > 0 THEN
        PERFORM tally._warn_quarantined('tally.counter_value', p_counter, p_key, v_quarantined);
    END IF;
    RETURN v_value;
END;
$$;

COMMENT ON FUNCTION tally.counter_value(text, text) IS
'All-time total of counter p_counter for p_key, including increments not folded yet '
'(on a hot standby: the logged ones).';
