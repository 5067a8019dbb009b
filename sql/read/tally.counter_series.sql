-- tally.counter_series: the buckets of one granularity that overlap
-- [p_from, p_to), ascending, each with its value (folded plus pending).
-- A bucket is listed when it received at least one increment, even if its
-- increments net to zero, and is still within the counter's retention.
-- Buckets follow the counter's time zone (UTC unless it was created with
-- another); week is the ISO week (Monday). On a hot standby the
-- pending deltas are the logged ones (see tally.counter_value); a key with
-- deltas set aside in tally.quarantine is answered without them, with a
-- WARNING.
CREATE OR REPLACE FUNCTION tally.counter_series(
    p_counter text,
    p_key text,
    p_granularity text,
    p_from timestamptz,
    p_to timestamptz
)
RETURNS TABLE (bucket timestamptz, value bigint)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.counter_series';
    v_counter tally.counters := tally._lookup_counter(c_fn, p_counter);
    v_quarantined bigint;
    v_from timestamptz;
BEGIN
    PERFORM tally._check_key(c_fn, p_key);
    PERFORM tally._check_range(c_fn, p_from, p_to);
    IF tally._granularity(c_fn, v_counter, p_granularity) = 'all' THEN
        RAISE EXCEPTION '%: granularity "all" has no buckets', c_fn
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'use tally.counter_value() for the all-time total';
    END IF;
    IF p_from = p_to THEN
        RETURN;  -- an empty range overlaps no bucket
    END IF;
    -- the first bucket wanted, computed here: bounds that are parameters let
    -- the planner prune the rollup's partitions (an expression such as
    -- date_trunc(.., 'UTC') is only stable, and planning every partition of
    -- a long history costs far more than reading the few it needs)
    v_from := greatest(date_trunc(p_granularity, p_from, v_counter.time_zone),
                       tally._cutoff(v_counter.id, p_granularity));
    RETURN QUERY EXECUTE format(
        $q$
        SELECT s.bucket, tally._as_bigint('tally.counter_series', $5, $2, sum(s.value))
        FROM (
            SELECT r.bucket, r.value
            FROM tally.%1$I AS r
            WHERE r.counter_id = $1 AND r.key = $2 AND r.bucket >= $3 AND r.bucket < $4
            UNION ALL
            SELECT date_trunc(%2$L, d.at, $6), d.delta
            FROM tally.delta AS d
            WHERE d.counter_id = $1 AND d.key = $2
              AND d.at >= $3 AND date_trunc(%2$L, d.at, $6) < $4%3$s
        ) AS s
        GROUP BY s.bucket
        ORDER BY s.bucket
        $q$, 'rollup_' || p_granularity, p_granularity, tally._replica_filter('d'))
    USING v_counter.id, p_key, v_from, p_to, p_counter, v_counter.time_zone;
    SELECT count(*) INTO v_quarantined FROM tally.quarantine AS q WHERE q.counter_id = v_counter.id AND q.key = p_key;
    IF v_quarantined > 0 THEN
        PERFORM tally._warn_quarantined(c_fn, p_counter, p_key, v_quarantined);
    END IF;
END;
$$;

COMMENT ON FUNCTION tally.counter_series(text, text, text, timestamptz, timestamptz) IS
'Non-empty buckets of one granularity overlapping [p_from, p_to), ascending, folded plus pending.';
