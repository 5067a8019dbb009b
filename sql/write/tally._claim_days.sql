-- tally._claim_days: the partitions of tally.event_ids (by first day) a
-- claim of an event id made now is written to, as a set (the rule is
-- tally._claim_bounds'; the claims read it from there).
CREATE OR REPLACE FUNCTION tally._claim_days()
RETURNS SETOF date
LANGUAGE sql
STABLE
BEGIN ATOMIC
    SELECT d.d FROM tally._claim_bounds() AS b CROSS JOIN unnest(b.days) AS d (d);
END;

COMMENT ON FUNCTION tally._claim_days() IS
'Internal: the partitions (first days) of tally.event_ids a claim of an event id is written to (see tally._claim_bounds).';
