-- tally._claim_event on a distributed install (Citus): claim one event id
-- of a counter for a key. The claim lives beside the key (tally.event_ids is
-- distributed by key, colocated with the deltas), so the increment that
-- runs on the key's worker claims and appends in one local transaction:
-- both commit, or neither. Every statement names the key: each is routed to
-- that one shard. An event id counts once per (counter, key): a replay
-- carries the key of the increment it repeats (docs/scale-out.md).
-- Concurrent claims of one id: the second waits on the first's row and
-- finds it (ON CONFLICT DO NOTHING), so one of them wins.
CREATE OR REPLACE FUNCTION tally._claim_event(p_counter_id integer, p_key text, p_event_id text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_days date[];
    v_from date;
    v_day date;
    v_parts integer := 0;
    v_claimed integer := 0;
    v_n integer;
BEGIN
    SELECT b.days, b.window_from INTO v_days, v_from FROM tally._claim_bounds() AS b;
    IF cardinality(v_days) = 0 THEN
        PERFORM tally._no_event_partition('tally.increment_counter');
    END IF;
    IF EXISTS (
        SELECT 1 FROM tally.event_ids AS x
        WHERE x.key = p_key AND x.counter_id = p_counter_id AND x.event_id = p_event_id
          AND x.seen_on >= v_from AND x.seen_on <= v_days[cardinality(v_days)]
    ) THEN
        RETURN false;
    END IF;
    -- Every partition of the window (tally._claim_days, whose evidence of
    -- the transactions still running is the coordinator's, would name
    -- fewer): whichever partition a concurrent or later claim of the id
    -- lands in, it meets this one. Partitions span up to 7 days, so that is
    -- one or two rows.
    FOR v_day IN
        SELECT e.day FROM tally.event_days AS e
        WHERE e.day >= v_from AND e.day <= v_days[cardinality(v_days)]
        ORDER BY e.day
    LOOP
        INSERT INTO tally.event_ids (counter_id, key, event_id, seen_on)
        VALUES (p_counter_id, p_key, p_event_id, v_day)
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_claimed := v_claimed + v_n;
        v_parts := v_parts + 1;
    END LOOP;
    RETURN v_claimed = v_parts;
END;
$$;

COMMENT ON FUNCTION tally._claim_event(integer, text, text) IS
'Internal: claim (counter, event id) for one increment of p_key; false if already applied within the window.';
