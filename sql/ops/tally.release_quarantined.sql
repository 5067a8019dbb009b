-- tally.release_quarantined: the way out of tally.quarantine. A fold sets
-- a key's deltas aside when folding them would overflow bigint; they are
-- then counted nowhere, reads of the key warn, and tally.health stays warn.
-- An admin decides, per key (p_key) or for every key of the counter
-- (p_key NULL):
--   'apply'    put them back among the pending deltas (in a logged shard,
--              as they were safe in quarantine), so the next fold counts
--              them: after a correction made room for them. Refused
--              (22003, nothing changed) while the key's value with them
--              would still overflow bigint; a fold sets aside again any
--              that overflow a bucket.
--   'discard'  delete them: they will never count.
-- Every release is recorded per key in tally.quarantine_releases. Returns
-- how many deltas were released.
CREATE OR REPLACE FUNCTION tally.release_quarantined(p_counter text, p_key text, p_action text)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.release_quarantined';
    v_counter tally.counters := tally._lookup_counter(c_fn, p_counter);
    v_key record;
    v_released bigint := 0;
BEGIN
    PERFORM tally._coordinator_only('tally.release_quarantined');
    IF p_action IS NULL OR p_action NOT IN ('apply', 'discard') THEN
        RAISE EXCEPTION '%: action % is not apply or discard', c_fn, coalesce(quote_literal(p_action), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = '''apply'' puts the deltas back for the next fold (once they fit); ''discard'' deletes them';
    END IF;
    IF p_key IS NOT NULL THEN
        PERFORM tally._check_key(c_fn, p_key);
    END IF;
    FOR v_key IN
        SELECT q.key, count(*) AS deltas, sum(q.delta::numeric) AS delta_sum
        FROM tally.quarantine AS q
        WHERE q.counter_id = v_counter.id AND (p_key IS NULL OR q.key = p_key)
        GROUP BY q.key
        ORDER BY q.key
    LOOP
        IF p_action = 'apply' THEN
            PERFORM tally._check_release(c_fn, v_counter, v_key.key, v_key.delta_sum);
            WITH moved AS (
                DELETE FROM tally.quarantine AS q
                WHERE q.counter_id = v_counter.id AND q.key = v_key.key
                RETURNING q.counter_id, q.key, q.delta, q.at
            )
            INSERT INTO tally.delta (shard, counter_id, key, delta, at)
            SELECT tally._shard(w.gen, true, false), m.counter_id, m.key, m.delta, m.at
            FROM moved AS m CROSS JOIN tally.write_gen AS w;
        ELSE
            DELETE FROM tally.quarantine AS q WHERE q.counter_id = v_counter.id AND q.key = v_key.key;
        END IF;
        INSERT INTO tally.quarantine_releases (counter_id, key, action, deltas, delta_sum)
        VALUES (v_counter.id, v_key.key, p_action, v_key.deltas, v_key.delta_sum);
        v_released := v_released + v_key.deltas;
    END LOOP;
    RETURN v_released;
END;
$$;

COMMENT ON FUNCTION tally.release_quarantined(text, text, text) IS
'Release the deltas a fold set aside (tally.quarantined) for a key (NULL: every key): ''apply'' them again once they '
'fit, or ''discard'' them; recorded in tally.quarantine_releases. Returns how many.';
