-- tally._window_parts: the statements that read [p_x, p_y) of a counter's
-- key from whole rollup buckets (each 'SELECT r.value FROM tally.rollup_<g>
-- ... AND r.bucket >= <a> AND r.bucket < <b>', for tally.counter_window's
-- UNION ALL), or NULL when the buckets kept cannot cut it exactly.
--
-- The coarsest granularity with whole kept buckets inside the piece takes
-- them, between two exact bucket starts (tally._window_boundary) no earlier
-- than where it is kept complete (p_starts); the edges left, each shorter
-- than one of its buckets, are cut the same way. When an edge cannot be
-- cut (weeks and months do not nest: a month's edge of three days needs
-- days), the next finer granularity is tried for the piece instead. Bucket
-- bounds are written as UTC ISO 8601 literals (whatever the session's
-- DateStyle and TimeZone), constants of the statement, so the planner
-- prunes the rollup partitions it does not need. p_grans and p_starts are
-- the counter's granularities, coarsest first, and from when each is
-- complete; each piece recurses at most once per granularity finer than
-- its own, so the cut is a handful of calls.
CREATE OR REPLACE FUNCTION tally._window_parts(
    p_zone text, p_grans text[], p_starts timestamptz[], p_x timestamptz, p_y timestamptz
)
RETURNS text[]
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_a timestamptz;
    v_b timestamptz;
    v_left text[];
    v_right text[];
BEGIN
    IF p_x >= p_y THEN
        RETURN '{}'::text[];
    END IF;
    FOR i IN 1 .. coalesce(cardinality(p_grans), 0) LOOP
        v_a := greatest(tally._window_ceil(p_grans[i], p_x, p_zone), p_starts[i]);
        v_b := date_trunc(p_grans[i], p_y, p_zone);
        CONTINUE WHEN v_a < p_x OR v_b > p_y OR v_a >= v_b
                      OR NOT tally._window_boundary(p_grans[i], v_a, p_zone)
                      OR NOT tally._window_boundary(p_grans[i], v_b, p_zone);
        v_left := tally._window_parts(p_zone, p_grans, p_starts, p_x, v_a);
        CONTINUE WHEN v_left IS NULL;
        v_right := tally._window_parts(p_zone, p_grans, p_starts, v_b, p_y);
        CONTINUE WHEN v_right IS NULL;
        RETURN v_left || v_right || format(
            'SELECT r.value FROM tally.%I AS r WHERE r.counter_id = $1 AND r.key = $2'
            ' AND r.bucket >= %L::timestamptz AND r.bucket < %L::timestamptz',
            'rollup_' || p_grans[i],
            to_char(v_a AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
            to_char(v_b AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'));
    END LOOP;
    RETURN NULL;
END;
$$;

COMMENT ON FUNCTION tally._window_parts(text, text[], timestamptz[], timestamptz, timestamptz) IS
'Internal: the rollup reads that cut a time range into whole kept buckets, or NULL when they cannot.';
