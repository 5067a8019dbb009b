-- tally._repair_internal: make a key's folded buckets add up again, finest
-- first (hour from minutes, day from hours, week and month from days — or
-- the nearest finer granularity kept — and the total from months): each
-- coarser bucket that differs from its finer buckets is set to their sum
-- (removed when it has none), and each change is recorded in
-- tally.corrections with its delta. The finest kept data is taken as the
-- evidence: a hand-edited hour, day or total is put back in line with the
-- minutes, hours, days or months it is made of. Under the fold lock.
CREATE OR REPLACE FUNCTION tally._repair_internal(p_counter_id integer, p_key text)
RETURNS TABLE (granularity text, bucket timestamptz, delta bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    v_row record;
    v_again boolean := true;
BEGIN
    PERFORM pg_advisory_xact_lock(tally._fold_lock_key());
    -- One pass per level: a repaired hour can reveal a day to repair.
    WHILE v_again LOOP
        v_again := false;
        FOR v_row IN SELECT * FROM tally._internal_drift(p_counter_id, p_key) LIMIT 1 LOOP
            v_again := true;
            IF v_row.granularity = 'all' AND v_row.expected IS NULL THEN
                DELETE FROM tally.totals AS t WHERE t.counter_id = p_counter_id AND t.key = p_key;
            ELSIF v_row.granularity = 'all' THEN
                INSERT INTO tally.totals AS t (counter_id, key, value) VALUES (p_counter_id, p_key, v_row.expected)
                ON CONFLICT (counter_id, key) DO UPDATE SET value = excluded.value;
            ELSIF v_row.expected IS NULL THEN
                EXECUTE format('DELETE FROM tally.%I WHERE counter_id = $1 AND key = $2 AND bucket = $3',
                               'rollup_' || v_row.granularity)
                USING p_counter_id, p_key, v_row.bucket;
            ELSE
                EXECUTE format(
                    'INSERT INTO tally.%I AS r (counter_id, key, bucket, value) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (counter_id, key, bucket) DO UPDATE SET value = excluded.value',
                    'rollup_' || v_row.granularity)
                USING p_counter_id, p_key, v_row.bucket, v_row.expected;
            END IF;
            INSERT INTO tally.corrections (counter_id, key, granularity, bucket, delta, reason)
            VALUES (p_counter_id, p_key, v_row.granularity, v_row.bucket,
                    coalesce(v_row.expected, 0) - coalesce(v_row.actual, 0),
                    format('internal: %s bucket rebuilt from its %s buckets', v_row.granularity, v_row.finer));
            granularity := v_row.granularity;
            bucket := v_row.bucket;
            delta := coalesce(v_row.expected, 0) - coalesce(v_row.actual, 0);
            RETURN NEXT;
        END LOOP;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION tally._repair_internal(integer, text) IS
'Internal: rebuild a key''s coarser buckets (and total) from the finer ones, recording each correction.';
