-- tally._window_ceil: the label of the next bucket of p_granularity in
-- p_zone from p_at: p_at itself when it is a label, else the label one
-- local unit after the label of the bucket holding p_at (cut again: a local
-- time skipped by a DST change lands on the label after it). Where a zone's
-- clock repeats or skips (the repeated hour, Lord Howe's half hours) that
-- may be no exact bucket start, or not after p_at: tally._window_parts
-- checks it (tally._window_boundary) and cuts the piece finer otherwise.
-- NULL and infinite times are answered as they are.
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
