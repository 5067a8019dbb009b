-- tally._append_batch: the append of tally.increment_counters (a batch
-- without event ids, every element checked): one INSERT of every element
-- into the shard slot of its counter's durability. Returns the rows
-- appended (fewer than the elements when a counter was dropped since the
-- check). A distributed install has its own body
-- (tally._append_batch.citus.sql).
CREATE OR REPLACE FUNCTION tally._append_batch(
    p_counters text[], p_keys text[], p_deltas bigint[], p_ats timestamptz[], p_bulk boolean
)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rows bigint;
BEGIN
    INSERT INTO tally.delta (shard, counter_id, key, delta, at)
    SELECT tally._shard(w.gen, c.durable, p_bulk), c.id, u.k, u.d, coalesce(u.t, now())
    FROM unnest(p_counters, p_keys, p_deltas, p_ats) AS u (n, k, d, t)
    JOIN tally.counters AS c ON c.name = u.n
    CROSS JOIN tally.write_gen AS w;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    RETURN v_rows;
END;
$$;

COMMENT ON FUNCTION tally._append_batch(text[], text[], bigint[], timestamptz[], boolean) IS
'Internal: append a checked batch (no event ids) to the delta shards; the rows appended.';
