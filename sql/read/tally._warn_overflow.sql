-- tally._warn_overflow: for a read over many keys (tally.top_keys), raise a
-- WARNING naming each key of the counter whose value in the bucket
-- containing p_bucket (granularity p_granularity, or 'all' for the total)
-- does not fit a bigint, and which the read therefore left out. Only keys
-- with pending deltas can overflow (folded values are bigints, and a fold
-- sets overflowing deltas aside), so this reads the pending deltas only.
CREATE OR REPLACE FUNCTION tally._warn_overflow(
    p_fn text, p_counter tally.counters, p_granularity text, p_bucket timestamptz
)
RETURNS void
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    v_key text;
    v_value numeric;
BEGIN
    -- buckets of the counter's time zone (reset when this function returns)
    PERFORM set_config('timezone', p_counter.time_zone, true);
    FOR v_key, v_value IN EXECUTE format(
        $q$
        SELECT p.key, p.pending + coalesce((
            SELECT f.value FROM %1$s AS f
            WHERE f.counter_id = $1 AND f.key = p.key %2$s), 0) AS value
        FROM (
            SELECT d.key, sum(d.delta) AS pending FROM tally.delta AS d
            WHERE d.counter_id = $1 %3$s%4$s
            GROUP BY d.key
        ) AS p
        ORDER BY p.key
        $q$,
        CASE WHEN p_granularity = 'all' THEN 'tally.totals' ELSE format('tally.%I', 'rollup_' || p_granularity) END,
        CASE WHEN p_granularity = 'all' THEN '' ELSE 'AND f.bucket = $2' END,
        CASE WHEN p_granularity = 'all' THEN ''
             ELSE format('AND date_trunc(%L, d.at) = $2', p_granularity) END,
        tally._replica_filter('d'))
    -- the bucket is computed here: a parameter lets the planner prune the
    -- rollup's partitions (date_trunc() is only stable)
    USING p_counter.id, CASE WHEN p_granularity <> 'all' THEN date_trunc(p_granularity, p_bucket) END
    LOOP
        CONTINUE WHEN v_value BETWEEN -9223372036854775808 AND 9223372036854775807;
        RAISE WARNING '%: key "%" of counter "%" left out: its value (%) is out of the bigint range',
            p_fn, v_key, p_counter.name, v_value
            USING HINT = 'its pending deltas overflow; the next fold sets them aside (see tally.quarantined)';
    END LOOP;
END;
$$;

COMMENT ON FUNCTION tally._warn_overflow(text, tally.counters, text, timestamptz) IS
'Internal: WARNING for each key a many-key read left out because its value overflows bigint.';
