-- tally._append_batch on a distributed install (Citus): where every key of
-- the batch has its shard on this node, tally._append_local_batch appends
-- the batch into those local shards with plain statements (a client that
-- routes by key sends such batches); else one INSERT that Citus sends to
-- each key's worker, one distributed transaction (two-phase commit when it
-- spans workers): all or nothing either way.
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
    v_rows := tally._append_local_batch(p_counters, p_keys, p_deltas, p_ats, p_bulk);
    IF v_rows IS NOT NULL THEN
        RETURN v_rows;
    END IF;
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
