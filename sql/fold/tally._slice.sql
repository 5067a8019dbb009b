-- tally._slice: the slice, of p_slices, that the deltas of (p_counter_id,
-- p_key) are folded by: the pair's hash bucket (a stable hash, seeded by
-- the counter) modulo p_slices. Every delta, total and rollup row of a pair
-- belongs to one slice, so folds of different slices never touch the same
-- row. The only place the slicing is written; inlined into the queries that
-- filter a shard by slice.
CREATE OR REPLACE FUNCTION tally._slice(p_counter_id integer, p_key text, p_slices integer)
RETURNS integer
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
RETURN ((pg_catalog.hashtextextended(p_key, p_counter_id) & (tally._slice_buckets() - 1)::bigint) % p_slices)::integer;

COMMENT ON FUNCTION tally._slice(integer, text, integer) IS
'Internal: the slice (of p_slices) whose fold owns the deltas of a (counter, key) pair.';
