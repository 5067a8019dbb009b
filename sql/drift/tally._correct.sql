-- tally._correct: append a correction delta for a key (it lands in the
-- current buckets, like any increment) and record why in tally.corrections.
CREATE OR REPLACE FUNCTION tally._correct(p_counter text, p_key text, p_delta bigint, p_reason text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM tally.increment_counter(p_counter, p_key, p_delta);
    INSERT INTO tally.corrections (counter_id, key, granularity, bucket, delta, reason)
    SELECT c.id, p_key, 'all', NULL, p_delta, p_reason FROM tally.counters AS c WHERE c.name = p_counter;
END;
$$;

COMMENT ON FUNCTION tally._correct(text, text, bigint, text) IS
'Internal: append a correction delta and record it in tally.corrections.';
