-- tally._folded_before: the time before which every acknowledged increment
-- is folded, from tally.write_gen.folded_before (one such time per
-- generation, set when a flip finds that generation drained): the older of
-- the two, NULL while either generation has never been found drained (then:
-- since install).
CREATE OR REPLACE FUNCTION tally._folded_before(p_folded_before timestamptz[])
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
RETURN CASE
    WHEN p_folded_before[1] IS NULL OR p_folded_before[2] IS NULL THEN NULL
    ELSE least(p_folded_before[1], p_folded_before[2])
END;

COMMENT ON FUNCTION tally._folded_before(timestamptz[]) IS
'Internal: before when every acknowledged increment is folded (the older generation''s mark), NULL: since install.';
