-- tally._has_data: whether a counter has anything counted: a pending delta,
-- a total, a bucket of one of its granularities or deltas set aside. The
-- pending deltas, totals and set-aside deltas are read in one statement (one
-- snapshot), before the buckets: a fold committing meanwhile only moves
-- what was seen pending already.
CREATE OR REPLACE FUNCTION tally._has_data(p_counter tally.counters)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_g text;
    v_data boolean;
BEGIN
    -- (SELECT 1: Citus 13.2 plans no empty target list on a distributed table)
    v_data := EXISTS (SELECT 1 FROM tally.delta AS d WHERE d.counter_id = p_counter.id)
           OR EXISTS (SELECT 1 FROM tally.totals AS t WHERE t.counter_id = p_counter.id)
           OR EXISTS (SELECT 1 FROM tally.quarantine AS q WHERE q.counter_id = p_counter.id);
    FOREACH v_g IN ARRAY p_counter.granularities LOOP
        EXIT WHEN v_data;
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM tally.%I AS r WHERE r.counter_id = $1)', 'rollup_' || v_g)
        INTO v_data USING p_counter.id;
    END LOOP;
    RETURN v_data;
END;
$$;

COMMENT ON FUNCTION tally._has_data(tally.counters) IS
'Internal: whether a counter has a pending delta, a total, a bucket or deltas set aside.';
