-- tally._append_claimed on a distributed install (Citus): each element of
-- the batch claimed beside its key (tally._claim_event), in order (a repeat
-- within the batch finds the first's claim), and appended to the logged
-- shards with it. Returns how many were appended and how many elements
-- name a counter that exists (see tally._append_claimed.sql).
CREATE OR REPLACE FUNCTION tally._append_claimed(
    p_counters text[], p_keys text[], p_deltas bigint[], p_ats timestamptz[], p_event_ids text[], p_bulk boolean
)
RETURNS TABLE (appended bigint, known bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_elem record;
BEGIN
    appended := 0;
    known := 0;
    FOR v_elem IN
        SELECT u.k, u.d, u.t, u.e, c.id AS counter_id
        FROM unnest(p_counters, p_keys, p_deltas, p_ats, p_event_ids) WITH ORDINALITY AS u (n, k, d, t, e, i)
        JOIN tally.counters AS c ON c.name = u.n
        ORDER BY u.i
    LOOP
        known := known + 1;
        CONTINUE WHEN NOT tally._claim_event(v_elem.counter_id, v_elem.k, v_elem.e);
        INSERT INTO tally.delta (shard, counter_id, key, delta, at)
        SELECT tally._shard(w.gen, true, p_bulk), v_elem.counter_id, v_elem.k, v_elem.d, coalesce(v_elem.t, now())
        FROM tally.write_gen AS w;
        appended := appended + 1;
    END LOOP;
    RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION tally._append_claimed(text[], text[], bigint[], timestamptz[], text[], boolean) IS
'Internal: append the elements of a batch whose (counter, event id) is claimed now; (appended, known elements).';
