-- tally.check_drift: check a sample of a counter's keys (or the keys given)
-- for drift, in the background, never per event:
--   internal: coarser buckets (and the total) that differ from the sum of
--             their finer buckets, within the retention windows;
--   source:   the counter against its registered source of truth
--             (tally.set_source), when there is one.
-- Returns the findings and records them (tally.drift shows the latest run).
-- The source query runs with its registrant's privileges, never tally's
-- (tally._source_value); everything it records it computed itself.
CREATE OR REPLACE FUNCTION tally.check_drift(
    p_counter text, p_sample integer DEFAULT 100, p_keys text[] DEFAULT NULL
)
RETURNS TABLE (key text, kind text, detail text, expected bigint, actual bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.check_drift';
    v_counter tally.counters := tally._lookup_counter(c_fn, p_counter);
    v_source boolean;
    v_key text;
    v_row record;
    v_truth bigint;
    v_value bigint;
    v_n integer := 0;
    v_findings jsonb := '[]'::jsonb;
BEGIN
    IF p_keys IS NOT NULL AND (pg_catalog.cardinality(p_keys) OPERATOR(pg_catalog.=) 0 OR pg_catalog.array_position(p_keys, NULL) IS NOT NULL) THEN
        RAISE EXCEPTION '%: keys must be a non-empty array without NULLs', c_fn
            USING ERRCODE = 'null_value_not_allowed', HINT = 'omit p_keys to check a random sample';
    END IF;
    IF p_keys IS NULL AND (
        p_sample IS NULL OR p_sample OPERATOR(pg_catalog.<) 1 OR p_sample OPERATOR(pg_catalog.>) 100000
    ) THEN
        RAISE EXCEPTION '%: sample size % is out of range', c_fn, coalesce(p_sample::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'check from 1 to 100000 keys per run';
    END IF;
    v_source := EXISTS (SELECT FROM tally.sources AS s WHERE s.counter_id = v_counter.id);
    FOR v_key IN
        SELECT k.k FROM pg_catalog.unnest(p_keys) AS k (k) WHERE p_keys IS NOT NULL
        UNION ALL
        SELECT s.s FROM tally._sample_keys(v_counter.id, p_sample) AS s (s) WHERE p_keys IS NULL
    LOOP
        PERFORM tally._check_key(c_fn, v_key);
        v_n := v_n OPERATOR(pg_catalog.+) 1;
        FOR v_row IN SELECT d.* FROM tally._internal_drift(v_counter.id, v_key) AS d LOOP
            key := v_key;
            kind := 'internal';
            detail := pg_catalog.format('%s bucket %s: its %s buckets add up to %s, it holds %s',
                                        v_row.granularity, coalesce(v_row.bucket::text, '(total)'), v_row.finer,
                                        coalesce(v_row.expected::text, 'nothing'),
                                        coalesce(v_row.actual::text, 'nothing'));
            expected := v_row.expected;
            actual := v_row.actual;
            RETURN NEXT;
            v_findings := v_findings OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
                'key', key, 'kind', kind, 'detail', detail, 'expected', expected, 'actual', actual);
        END LOOP;
        IF v_source THEN
            v_truth := tally._source_value(v_counter.id, v_key);
            v_value := tally.counter_value(p_counter, v_key);
            -- a source with no row for the key says nothing about it
            IF v_truth IS NOT NULL AND v_truth OPERATOR(pg_catalog.<>) v_value THEN
                key := v_key;
                kind := 'source';
                detail := pg_catalog.format('the source of truth says %s, the counter %s', v_truth, v_value);
                expected := v_truth;
                actual := v_value;
                RETURN NEXT;
                v_findings := v_findings OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(
                    'key', key, 'kind', kind, 'detail', detail, 'expected', expected, 'actual', actual);
            END IF;
        END IF;
    END LOOP;
    PERFORM tally._record_drift(v_counter.id, v_n, v_findings, v_source);
END;
$$;

COMMENT ON FUNCTION tally.check_drift(text, integer, text[]) IS
'Check a sample of keys (or the given keys) for internal inconsistency and drift from the source of truth; records the run.';
