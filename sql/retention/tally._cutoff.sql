-- tally._cutoff: the start of the oldest bucket of p_granularity that
-- counter p_counter_id still keeps at p_now ('-infinity' when it keeps every
-- bucket). Folds skip older buckets and reads hide them; the totals and the
-- coarser granularities still count those increments. In the counter's
-- time zone: the retention is taken off the zone's wall clock (7 days
-- before 09:00 local is 09:00 local, across a daylight-saving change).
CREATE OR REPLACE FUNCTION tally._cutoff(
    p_counter_id integer, p_granularity text, p_now timestamptz DEFAULT now()
)
RETURNS timestamptz
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    v_zone text := coalesce((SELECT c.time_zone FROM tally.counters AS c WHERE c.id = p_counter_id), 'UTC');
BEGIN
    RETURN coalesce(
        date_trunc(p_granularity,
                   ((p_now AT TIME ZONE v_zone) - tally._keep(p_counter_id, p_granularity)) AT TIME ZONE v_zone,
                   v_zone),
        '-infinity');
END;
$$;

COMMENT ON FUNCTION tally._cutoff(integer, text, timestamptz) IS
'Internal: start of the oldest bucket a counter keeps for a granularity (-infinity: all).';
