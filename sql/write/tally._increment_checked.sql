-- tally._increment_checked: the slow path of tally.increment_counter, the
-- same in both modes: its fast path found a rule broken, or an event id is
-- given. Raise the broken rule (tally._check_increment), or look the
-- counter up as it is now (one dropped since is refused as unknown; one
-- dropped and made again is the new one), claim the event id first
-- (tally._claim_event: false for a replay), and append the delta, to a
-- logged shard when it carries an event id, so the two survive or vanish
-- together in a crash. The rules are checked in full only when a quick
-- test of them fails (an increment with a valid event id comes here on
-- every call). A writer the backlog limits hold back (the fast path does
-- not append then) is slowed or refused here (tally._admit). Not SECURITY
-- DEFINER and no search_path of its own: only tally.increment_counter,
-- which pins both, calls it.
CREATE OR REPLACE FUNCTION tally._increment_checked(
    p_counter text, p_key text, p_delta bigint, p_at timestamptz, p_event_id text
)
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
    c_fn constant text := 'tally.increment_counter';
    v_id integer;
    v_durable boolean;
BEGIN
    IF NOT (p_event_id IS NOT NULL AND tally._valid_key(p_key) AND p_delta IS NOT NULL AND tally._valid_at(p_at)
            AND tally._valid_event_id(p_event_id)) THEN
        PERFORM tally._check_increment(c_fn, NULL, p_counter, p_key, p_delta, p_at, p_event_id IS NOT NULL,
                                       p_event_id);
    END IF;
    SELECT c.id, c.durable INTO v_id, v_durable FROM tally.counters AS c WHERE c.name = p_counter;
    IF NOT FOUND THEN
        SELECT c.id, c.durable INTO v_id, v_durable FROM tally._lookup_counter(c_fn, p_counter) AS c;
    END IF;
    IF (SELECT w.backlog_state FROM tally.write_gen AS w) <> 0 THEN
        PERFORM tally._admit(c_fn, 1);  -- slowed, or refused (tally.set_backlog_limits)
    END IF;
    IF p_event_id IS NOT NULL AND NOT tally._claim_event(v_id, p_key, p_event_id) THEN
        RETURN false;
    END IF;
    INSERT INTO tally.delta (shard, counter_id, key, delta, at)
    SELECT tally._shard(w.gen, v_durable OR p_event_id IS NOT NULL, false), v_id, p_key, p_delta, p_at
    FROM tally.write_gen AS w;
    RETURN true;
END;
$$;

COMMENT ON FUNCTION tally._increment_checked(text, text, bigint, timestamptz, text) IS
'Internal: increment_counter''s slow path (both modes): raise the broken rule, or claim the event id and append.';
