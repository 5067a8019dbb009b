-- tally.increment_counter: the hot path. Appends one delta row to this
-- backend's shard of the active generation (unlogged for fast counters,
-- logged for durable ones).
-- It updates no shared row and takes no lock another writer can wait on, so
-- writers never block each other. The increment joins the caller's
-- transaction: it counts if and only if that transaction commits.
--
-- With p_event_id it is applied at most once per counter within the
-- idempotency window (tally.set_event_window, default 7 days): a replay
-- returns false and changes nothing. Such an increment goes to the logged
-- shards even on a fast counter, so its delta and its event id survive or
-- vanish together in a crash, and a replay after the crash is exact.
-- (A distributed install has its own body: tally.increment_counter.citus.sql.)
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
BEGIN
    -- The common case in one statement: look the counter up, check the
    -- arguments and append the delta.
    IF p_event_id IS NULL THEN
        INSERT INTO tally.delta (shard, counter_id, key, delta, at)
        SELECT tally._shard(w.gen, c.durable, false), c.id, p_key, p_delta, p_at
        FROM tally.counters AS c CROSS JOIN tally.write_gen AS w
        WHERE c.name = p_counter AND tally._valid_key(p_key) AND p_delta IS NOT NULL AND tally._valid_at(p_at)
          AND w.backlog_state = 0;
        IF FOUND THEN
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
