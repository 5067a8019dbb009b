-- tally._local_minute: the start of the minute of p_zone's wall clock that
-- holds p_at. The fold pre-aggregates its chunk by this minute, from which
-- every coarser bucket of the counter's zone follows. It is the UTC minute
-- in every zone whose offset is whole minutes (every zone since 1972); the
-- UTC case skips the zone look-up, on every delta folded.
CREATE OR REPLACE FUNCTION tally._local_minute(p_at timestamptz, p_zone text)
RETURNS timestamptz
LANGUAGE sql
STABLE
PARALLEL SAFE
RETURN CASE
    WHEN p_zone = 'UTC' OR p_zone IS NULL THEN date_trunc('minute', p_at, 'UTC')
    ELSE date_trunc('minute', p_at, p_zone)
END;

COMMENT ON FUNCTION tally._local_minute(timestamptz, text) IS
'Internal: the start of the local minute of a time zone holding a time (the fold''s pre-aggregation).';
