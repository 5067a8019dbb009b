-- tally._valid_at: whether an increment timestamp is acceptable (finite,
-- from 1970 to one day ahead of now()). The one definition every function
-- checks timestamps against; inlined where it is used. tally._check_at turns
-- a false into the right error.
CREATE OR REPLACE FUNCTION tally._valid_at(p_at timestamptz)
RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
RETURN p_at IS NOT NULL
AND isfinite(p_at)
AND p_at >= '1970-01-01 00:00:00+00'::timestamptz
AND p_at <= now() + interval '1 day';

COMMENT ON FUNCTION tally._valid_at(timestamptz) IS
'Internal: an increment timestamp is finite, from 1970, at most a day ahead (inlined predicate).';
