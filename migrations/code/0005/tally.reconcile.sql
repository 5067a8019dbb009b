-- tally.reconcile: repair the given keys of a counter and say what changed.
--   internal: coarser buckets (and the total) that do not add up are rebuilt
--             from their finer buckets (tally._repair_internal);
--   source:   a counter that differs from its source of truth gets a
--             correction delta (truth - counter), appended like an increment.
-- Every change is recorded in tally.corrections, so history stays
-- explainable. The source query runs with its registrant's privileges, never
-- tally's (tally._source_value).
CREATE OR REPLACE FUNCTION tally.reconcile(p_counter text, p_keys text[])
RETURNS TABLE (key text, granularity text, bucket timestamptz, delta bigint, reason text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.reconcile';
    v_counter tally.counters := tally._counter(c_fn, p_counter);
    v_source boolean;
    v_key text;
    v_row record;
    v_truth bigint;
    v_value bigint;
BEGIN
    IF p_keys IS NULL OR pg_catalog.array_position(p_keys, NULL) IS NOT NULL THEN
        RAISE EXCEPTION '%: keys must be an array without NULLs', c_fn
            USING ERRCODE = 'null_value_not_allowed', HINT = 'pass the keys tally.drift or check_drift reported';
    END IF;
    v_source := EXISTS (SELECT FROM tally.sources AS s WHERE s.counter_id = v_counter.id);
    FOREACH v_key IN ARRAY p_keys LOOP
        PERFORM tally._check_key(c_fn, v_key);
        FOR v_row IN SELECT r.* FROM tally._repair_internal(v_counter.id, v_key) AS r LOOP
            key := v_key;
            granularity := v_row.granularity;
            bucket := v_row.bucket;
            delta := v_row.delta;
            reason := 'internal';
            RETURN NEXT;
        END LOOP;
        IF v_source THEN
            v_truth := tally._source_value(v_counter.id, v_key);
            v_value := tally.counter_value(p_counter, v_key);
            -- a source with no row for the key says nothing about it
            IF v_truth IS NOT NULL AND v_truth OPERATOR(pg_catalog.<>) v_value THEN
                PERFORM tally._correct(p_counter, v_key, v_truth OPERATOR(pg_catalog.-) v_value,
                                       pg_catalog.format('source: the source of truth said %s, the counter %s',
                                                         v_truth, v_value));
                key := v_key;
                granularity := 'all';
                bucket := NULL;
                delta := v_truth OPERATOR(pg_catalog.-) v_value;
                reason := 'source';
                RETURN NEXT;
            END IF;
        END IF;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION tally.reconcile(text, text[]) IS
'Repair keys: rebuild coarser buckets from finer ones, append correction deltas toward the source of truth; all recorded.';
