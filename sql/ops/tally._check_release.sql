-- tally._check_release: refuse to put a key's quarantined deltas (sum
-- p_sum) back while its all-time value with them would still overflow
-- bigint: the next fold would only set them aside again.
CREATE OR REPLACE FUNCTION tally._check_release(p_fn text, p_counter tally.counters, p_key text, p_sum numeric)
RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value numeric;
BEGIN
    SELECT coalesce((SELECT t.value FROM tally.totals AS t WHERE t.counter_id = p_counter.id AND t.key = p_key), 0)
           + coalesce((SELECT sum(d.delta::numeric) FROM tally.delta AS d
                       WHERE d.counter_id = p_counter.id AND d.key = p_key), 0)
           + p_sum
    INTO v_value;
    IF v_value NOT BETWEEN -9223372036854775808 AND 9223372036854775807 THEN
        RAISE EXCEPTION '%: the deltas of key "%" of counter "%" set aside (sum %) still do not fit: its value would be %',
            p_fn, p_key, p_counter.name, p_sum, v_value
            USING ERRCODE = 'numeric_value_out_of_range',
                  HINT = 'correct the key first (an increment that makes room), or discard them with ''discard''';
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._check_release(text, tally.counters, text, numeric) IS
'Internal: refuse to re-apply a key''s quarantined deltas while its value with them would overflow bigint.';
