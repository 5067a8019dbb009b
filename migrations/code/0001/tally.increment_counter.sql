-- tally.increment_counter: the hot path. Appends one delta row to this
-- backend's shard of the active generation (unlogged for fast counters,
-- logged for durable ones).
-- It updates no shared row and takes no lock another writer can wait on, so
-- writers never block each other. The increment joins the caller's
-- transaction: it counts if and only if that transaction commits.
CREATE OR REPLACE FUNCTION tally.increment_counter(
    p_counter text,
    p_key text,
    p_delta bigint DEFAULT 1,
    p_at timestamptz DEFAULT now()
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
    SELECT c.id, tally._shard(w.gen, c.durable, false)
    INTO v_id, v_shard
    FROM tally.counters AS c CROSS JOIN tally.write_gen AS w
    WHERE c.name = p_counter;
    IF NOT FOUND THEN
        PERFORM tally._counter('tally.increment_counter', p_counter);
    END IF;
    IF NOT tally._valid_key(p_key) THEN
        PERFORM tally._check_key('tally.increment_counter', p_key);
    END IF;
    IF p_delta IS NULL THEN
        RAISE EXCEPTION 'tally.increment_counter: delta for counter "%" must not be NULL', p_counter
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'omit it to add 1, or pass a negative delta to subtract';
    END IF;
    IF NOT tally._valid_at(p_at) THEN
        PERFORM tally._check_at('tally.increment_counter', p_at);
    END IF;
    INSERT INTO tally.delta (shard, counter_id, key, delta, at)
    VALUES (v_shard, v_id, p_key, p_delta, p_at);
    RETURN true;
END;
$$;

COMMENT ON FUNCTION tally.increment_counter(text, text, bigint, timestamptz) IS
'Add p_delta (default 1) to counter p_counter for p_key at p_at (default now()). Appends a delta; never waits on other writers.';
