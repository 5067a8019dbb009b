-- tally._window_boundary: whether p_at is where a bucket of p_granularity in
-- p_zone begins, exactly: it is the bucket's own label (date_trunc) and the
-- instant before it lies in an earlier bucket. Both matter where a zone's
-- clock repeats or skips: in Australia/Lord_Howe's half-hour DST changes
-- an hour's label is not where its times begin, and America/Havana's
-- repeated midnight labels a day 05:00 UTC whose times begin at 04:00 UTC.
-- tally.counter_window reads a granularity's buckets only between two such
-- instants: the buckets labelled from one to the other then hold exactly
-- the times between them (a bucket's label never decreases with time).
CREATE OR REPLACE FUNCTION tally._window_boundary(p_granularity text, p_at timestamptz, p_zone text)
RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
RETURN date_trunc(p_granularity, p_at, p_zone) = p_at
AND date_trunc(p_granularity, p_at - interval '1 microsecond', p_zone) < p_at;

COMMENT ON FUNCTION tally._window_boundary(text, timestamptz, text) IS
'Internal: whether a time is exactly where a bucket of a granularity in a time zone begins.';
