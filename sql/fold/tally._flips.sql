-- tally._flips: how many times the delta generations have flipped; the
-- compactor compares it with its value at the start of a call.
CREATE OR REPLACE FUNCTION tally._flips()
RETURNS bigint
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    SELECT w.flips FROM tally.write_gen AS w;
END;

COMMENT ON FUNCTION tally._flips() IS
'Internal: the generation flip counter.';
