-- tally.top_keys: the p_limit keys with the highest value in one bucket
-- (the bucket containing p_bucket), or over all time with granularity 'all'
-- (p_bucket is then ignored). Ties are broken by key. Includes pending deltas.
-- A key whose pending deltas overflow bigint (poison the next fold sets
-- aside) is left out with a WARNING: it never fails the read of the others.
-- On a hot standby the pending deltas are the logged ones (see
-- tally.counter_value); deltas set aside in tally.quarantine are not
-- counted, with a WARNING.
CREATE OR REPLACE FUNCTION tally.top_keys(
    p_counter text,
    p_granularity text,
    p_bucket timestamptz,
    p_limit integer DEFAULT 10
)
RETURNS TABLE (key text, value bigint)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.top_keys';
    v_counter tally.counters := tally._lookup_counter(c_fn, p_counter);
    v_granularity text := tally._granularity(c_fn, v_counter, p_granularity);
    v_quarantined bigint;
    v_bucket timestamptz;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 OR p_limit > 10000 THEN
        RAISE EXCEPTION '%: limit % is out of range', c_fn, coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass a limit from 1 to 10000';
    END IF;
    SELECT count(*) INTO v_quarantined FROM tally.quarantine AS q WHERE q.counter_id = v_counter.id;
    IF v_quarantined > 0 THEN
        PERFORM tally._warn_quarantined(c_fn, p_counter, NULL, v_quarantined);
    END IF;
    IF v_granularity = 'all' THEN
        RETURN QUERY EXECUTE format(
            $q$
            SELECT s.key, sum(s.value)::bigint AS value
            FROM (
                SELECT t.key, t.value::numeric FROM tally.totals AS t WHERE t.counter_id = $1
                UNION ALL
                SELECT d.key, d.delta FROM tally.delta AS d WHERE d.counter_id = $1%1$s
            ) AS s
            GROUP BY s.key
            HAVING sum(s.value) BETWEEN -9223372036854775808 AND 9223372036854775807
            ORDER BY 2 DESC, 1
            LIMIT $2
            $q$, tally._replica_filter('d'))
        USING v_counter.id, p_limit;
        PERFORM tally._warn_overflow(c_fn, v_counter, 'all', NULL);
        RETURN;
    END IF;
    IF p_bucket IS NULL OR NOT isfinite(p_bucket) THEN
        RAISE EXCEPTION '%: bucket % is not a finite timestamp', c_fn, coalesce(p_bucket::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'pass any time inside the bucket wanted, e.g. now()';
    END IF;
    -- the bucket, computed here: a parameter lets the planner prune the
    -- rollup's partitions (date_trunc(.., 'UTC') is only stable)
    v_bucket := date_trunc(v_granularity, p_bucket, v_counter.time_zone);
    IF v_bucket < tally._cutoff(v_counter.id, v_granularity) THEN
        RETURN;  -- that bucket is older than the counter keeps
    END IF;
    RETURN QUERY EXECUTE format(
        $q$
        SELECT s.key, sum(s.value)::bigint
        FROM (
            SELECT r.key, r.value::numeric
            FROM tally.%1$I AS r
            WHERE r.counter_id = $1 AND r.bucket = $2
            UNION ALL
            SELECT d.key, d.delta
            FROM tally.delta AS d
            WHERE d.counter_id = $1 AND date_trunc(%2$L, d.at, $4) = $2%3$s
        ) AS s
        GROUP BY s.key
        HAVING sum(s.value) BETWEEN -9223372036854775808 AND 9223372036854775807
        ORDER BY 2 DESC, 1
        LIMIT $3
        $q$, 'rollup_' || v_granularity, v_granularity, tally._replica_filter('d'))
    USING v_counter.id, v_bucket, p_limit, v_counter.time_zone;
    PERFORM tally._warn_overflow(c_fn, v_counter, v_granularity, p_bucket);
END;
$$;

COMMENT ON FUNCTION tally.top_keys(text, text, timestamptz, integer) IS
'The p_limit keys with the highest value in the bucket containing p_bucket (or over all time with ''all'').';
