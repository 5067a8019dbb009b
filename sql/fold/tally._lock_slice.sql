-- tally._lock_slice: the locks of a fold of slice p_slice of p_slices, for
-- the rest of the transaction: the fold lock SHARED (folds of other slices
-- go on; reclaim, flip, tally.maintain and tally.drop_counter, which take it
-- exclusive, wait) and, exclusive, every hash bucket the slice owns, in
-- ascending order. Slices of one slice count own disjoint buckets and never
-- wait on each other; a slice of another count (two compactors configured
-- differently) waits for the folds it shares a bucket with, so two folds
-- never delete the same delta or write the same rollup row at once.
CREATE OR REPLACE FUNCTION tally._lock_slice(p_slice integer, p_slices integer)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_bucket integer;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(tally._fold_lock_key());
    FOR v_bucket IN SELECT b FROM generate_series(p_slice, tally._slice_buckets() - 1, p_slices) AS b ORDER BY b LOOP
        -- two-key advisory locks: a key space apart from the fold lock's
        PERFORM pg_advisory_xact_lock(736175647, v_bucket);
    END LOOP;
END;
$$;

COMMENT ON FUNCTION tally._lock_slice(integer, integer) IS
'Internal: the fold lock shared plus the slice''s hash buckets exclusive, for a parallel fold of one slice.';
