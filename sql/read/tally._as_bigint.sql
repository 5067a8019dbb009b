-- tally._as_bigint: a summed value as bigint, or tally._overflow's clear
-- error naming the function, counter and key. Not inlined (its argument,
-- a sum, appears more than once), so one call per value read.
CREATE OR REPLACE FUNCTION tally._as_bigint(p_fn text, p_counter text, p_key text, p_value numeric)
RETURNS bigint
LANGUAGE sql
STABLE
RETURN CASE
    WHEN p_value BETWEEN -9223372036854775808 AND 9223372036854775807 THEN p_value::bigint
    ELSE tally._overflow(p_fn, p_counter, p_key, p_value)
END;

COMMENT ON FUNCTION tally._as_bigint(text, text, text, numeric) IS
'Internal: numeric to bigint for the reads, with a clear 22003 error when it does not fit.';
