-- tally._check_slice: refuse a slice that is not one, for the compactor's
-- functions (tally.compact_step, tally._fold_step), in one wording: p_slices
-- from 1 (every key) to tally._slice_buckets(), p_slice from 0 to
-- p_slices - 1. (The PL/Python procedures say the same before they call a
-- step: plpython/compact.py.)
CREATE OR REPLACE FUNCTION tally._check_slice(p_fn text, p_slice integer, p_slices integer)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_slices IS NULL OR p_slices < 1 OR p_slices > tally._slice_buckets()
       OR p_slice IS NULL OR p_slice < 0 OR p_slice >= p_slices THEN
        RAISE EXCEPTION '%: slice % of % is not a slice', p_fn, coalesce(p_slice::text, 'NULL'),
            coalesce(p_slices::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = format('p_slices: how many compactors fold at once (1, the default: every key; at most %s); '
                                'p_slice: this one''s, from 0 to p_slices - 1', tally._slice_buckets());
    END IF;
END;
$$;

COMMENT ON FUNCTION tally._check_slice(text, integer, integer) IS
'Internal: refuse a slice that is not one (22023), for the compactor''s functions, in one wording.';
