-- tally._claim_event: claim one event id of a counter for a key, on a
-- distributed install. The claim lives beside the key (tally.event_ids is
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
    v_day date;
    v_days integer := 0;
    v_claimed integer := 0;
    v_n integer;
BEGIN
    IF EXISTS (
        SELECT 1 FROM tally.event_ids AS x
        WHERE x.key = p_key AND x.counter_id = p_counter_id AND x.event_id = p_event_id
          AND x.seen_on >= (now() AT TIME ZONE 'UTC')::date
                           - (SELECT s.event_window_days FROM tally.settings AS s)
    ) THEN
        RETURN false;
    END IF;
    -- Every day of the window (tally._claim_days, whose evidence of the
    -- transactions still running is the coordinator's, would name fewer):
    -- whichever day a concurrent or later claim of the id lands on, it
    -- meets this one.
    FOR v_day IN
        SELECT g.d::date
        FROM generate_series(
            ((now() AT TIME ZONE 'UTC')::date - (SELECT s.event_window_days FROM tally.settings AS s))::timestamp,
            (statement_timestamp() AT TIME ZONE 'UTC')::date::timestamp,
            interval '1 day'
        ) AS g (d)
    LOOP
        INSERT INTO tally.event_ids (counter_id, key, event_id, seen_on)
        VALUES (p_counter_id, p_key, p_event_id, v_day)
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_claimed := v_claimed + v_n;
        v_days := v_days + 1;
    END LOOP;
    RETURN v_claimed = v_days;
END;
$$;

COMMENT ON FUNCTION tally._claim_event(integer, text, text) IS
'Internal: on a distributed install, claim (counter, key, event id) beside the key; false if already applied.';
