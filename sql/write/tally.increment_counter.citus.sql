-- tally.increment_counter on a distributed install (Citus): what
-- tally.increment_counter.sql does on one node, delegated by p_key to the
-- node holding the key (outside a transaction block: Citus forwards the
-- call from any other node). There the key's shard is local, and
-- tally._append_local appends the delta into it with plain PostgreSQL
-- statements, as on one node. Where it cannot (a transaction block on
-- another node, a shard moved since the node's body was made, REPEATABLE
-- READ), the general path: the lookup, then a one-row INSERT of values,
-- which Citus routes to the key's shard. A counter dropped in between
-- leaves a delta the fold discards. An event id is claimed beside its key
-- (tally._claim_event), in the same local transaction as its delta.
CREATE OR REPLACE FUNCTION tally.increment_counter(
    p_counter text,
    p_key text,
    p_delta bigint DEFAULT 1,
    p_at timestamptz DEFAULT now(),
    p_event_id text DEFAULT NULL
)
RETURNS boolean
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id integer;
    v_shard smallint;
BEGIN
    IF p_event_id IS NULL THEN
        -- Where the key's shard is on this node, a plain local append.
        IF tally._append_local(p_counter, p_key, p_delta, p_at) THEN
            RETURN true;
        END IF;
        SELECT tally._shard(w.gen, c.durable, false), c.id INTO v_shard, v_id
        FROM tally.counters AS c CROSS JOIN tally.write_gen AS w
        WHERE c.name = p_counter AND tally._valid_key(p_key) AND p_delta IS NOT NULL AND tally._valid_at(p_at)
          AND w.backlog_state = 0;
        IF FOUND THEN
            INSERT INTO tally.delta (shard, counter_id, key, delta, at) VALUES (v_shard, v_id, p_key, p_delta, p_at);
            RETURN true;
        END IF;
    END IF;

    -- Say what is wrong, or hold the writer back (tally.set_backlog_limits),
    -- or claim the event id first (both modes).
    RETURN tally._increment_checked(p_counter, p_key, p_delta, p_at, p_event_id);
END;
$$;

COMMENT ON FUNCTION tally.increment_counter(text, text, bigint, timestamptz, text) IS
'Add p_delta (default 1) to counter p_counter for p_key at p_at (default now()); with p_event_id at most once '
'within the idempotency window (false for a replay). Appends a delta; never waits on other writers.';
