-- tally._slice_buckets: how many hash buckets the (counter, key) pairs fall
-- into (tally._slice). A slice of a parallel fold is a set of buckets, so
-- at most this many compactors fold at once; folds of slices that share a
-- bucket (different slice counts at once) take turns (tally._lock_slice).
CREATE OR REPLACE FUNCTION tally._slice_buckets()
RETURNS integer
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
RETURN 64;

COMMENT ON FUNCTION tally._slice_buckets() IS
'Internal: the number of hash buckets of (counter, key); the most slices a fold can be split into.';
