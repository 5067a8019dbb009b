-- tally._window_ceil: a bucket boundary of p_granularity in p_zone at or
-- after p_at: p_at itself when it is one, else the start of the next
-- bucket by the local calendar (one local unit after the bucket holding
-- p_at, cut again: a local time skipped by a DST change lands on the
-- boundary after it). In the hour repeated when clocks go back it answers
-- the boundary after the repeated hour: a later boundary, never a time
-- that is not one, so tally.counter_window reads the rest in finer
-- buckets. NULL and infinite times are answered as they are.
CREATE OR REPLACE FUNCTION tally._window_ceil(p_granularity text, p_at timestamptz, p_zone text)
RETURNS timestamptz
LANGUAGE sql
STABLE
PARALLEL SAFE
RETURN CASE
    WHEN p_at IS NULL OR NOT isfinite(p_at) THEN p_at
    WHEN date_trunc(p_granularity, p_at, p_zone) = p_at THEN p_at
    ELSE date_trunc(
        p_granularity,
        ((date_trunc(p_granularity, p_at, p_zone) AT TIME ZONE p_zone) + ('1 ' || p_granularity)::interval)
        AT TIME ZONE p_zone,
        p_zone
    )
END;

COMMENT ON FUNCTION tally._window_ceil(text, timestamptz, text) IS
'Internal: the first bucket boundary of a granularity in a time zone at or after a time.';
