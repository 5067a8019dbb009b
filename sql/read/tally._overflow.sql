-- tally._overflow: refuse a read whose value does not fit a bigint. That
-- happens only while deltas that overflow are still pending: the next fold
-- sets them aside (tally.quarantined) and the read works again.
CREATE OR REPLACE FUNCTION tally._overflow(p_fn text, p_counter text, p_key text, p_value numeric)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION '%: the value of key "%" of counter "%" (%) is out of the bigint range', p_fn, p_key, p_counter,
        p_value
        USING ERRCODE = 'numeric_value_out_of_range',
              HINT = 'its pending deltas overflow; the next fold sets them aside (see tally.quarantined), '
                     'then reads work again';
END;
$$;

COMMENT ON FUNCTION tally._overflow(text, text, text, numeric) IS
'Internal: a clear 22003 error for a read whose value overflows bigint (pending overflowing deltas).';
