-- tally._cutoff: the start of the oldest bucket of p_granularity that
-- counter p_counter_id still keeps at p_now ('-infinity' when it keeps every
-- bucket). Folds skip older buckets and reads hide them; the totals and the
-- coarser granularities still count those increments.
CREATE OR REPLACE FUNCTION tally._cutoff(
    p_counter_id integer, p_granularity text, p_now timestamptz DEFAULT now()
)
RETURNS timestamptz
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
BEGIN ATOMIC
    SELECT coalesce(date_trunc(p_granularity, p_now - tally._keep(p_counter_id, p_granularity), 'UTC'), '-infinity');
END;

COMMENT ON FUNCTION tally._cutoff(integer, text, timestamptz) IS
'Internal: start of the oldest bucket a counter keeps for a granularity (-infinity: all).';
