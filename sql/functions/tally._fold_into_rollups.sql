-- tally._fold_into_rollups: one fold, in the caller's transaction. Under the fold lock it
-- moves up to p_limit committed deltas out of the shards (DELETE ... RETURNING,
-- pre-aggregated per (counter, key, minute) into the unlogged scratch table),
-- then upserts the total and every granularity, each aggregated by its
-- conflict key, in sorted key order. Runs with timezone UTC: buckets are UTC.
-- Moving and upserting are one transaction: a fold is applied wholly or not
-- at all, and a delta is either still pending or folded, never both.
CREATE OR REPLACE FUNCTION tally._fold_into_rollups(p_limit integer)
RETURNS bigint
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    v_shard record;
    v_total bigint := 0;
    v_g text;
BEGIN
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'tally._fold: limit % must be a positive number of deltas', coalesce(p_limit::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', HINT = 'the default is 100000';
    END IF;
    -- Folds are serialized: one fold writes rollups at a time, so two folds
    -- can never wait on each other's rows.
    PERFORM pg_advisory_xact_lock(tally._fold_lock_key());

    -- Start at a random shard so no shard starves under a bounded fold.
    FOR v_shard IN
        SELECT i.inhrelid::regclass AS rel
        FROM pg_catalog.pg_inherits AS i
        WHERE i.inhparent = 'tally.delta'::regclass
        ORDER BY random()
    LOOP
        EXIT WHEN v_total >= p_limit;
        EXECUTE format(
            'WITH moved AS (
                 DELETE FROM %1$s AS d
                 WHERE d.ctid = ANY (ARRAY(SELECT s.ctid FROM %1$s AS s LIMIT $1))
                 RETURNING d.counter_id, d.key, d.delta, d.at)
             INSERT INTO tally.fold_batch (counter_id, key, minute, delta, n)
             SELECT m.counter_id, m.key, date_trunc(''minute'', m.at), sum(m.delta), count(*)
             FROM moved AS m
             GROUP BY 1, 2, 3', v_shard.rel)
        USING p_limit - v_total;
        v_total := (SELECT coalesce(sum(b.n), 0) FROM tally.fold_batch AS b);
    END LOOP;
    IF v_total = 0 THEN
        RETURN 0;
    END IF;

    PERFORM tally._ensure_partitions();

    -- Deltas of a counter dropped meanwhile (a writer that looked the
    -- counter up just before tally.drop_counter committed) are discarded.
    INSERT INTO tally.totals AS t (counter_id, key, value)
    SELECT b.counter_id, b.key, sum(b.delta)::bigint
    FROM tally.fold_batch AS b
    WHERE EXISTS (SELECT FROM tally.counters AS c WHERE c.id = b.counter_id)
    GROUP BY b.counter_id, b.key
    ORDER BY b.counter_id, b.key
    ON CONFLICT (counter_id, key) DO UPDATE SET value = t.value + excluded.value;

    FOR v_g IN SELECT g.name FROM tally.granularities AS g ORDER BY g.ord LOOP
        EXECUTE format(
            'INSERT INTO tally.%1$I AS r (counter_id, key, bucket, value)
             SELECT b.counter_id, b.key, date_trunc(%2$L, b.minute), sum(b.delta)::bigint
             FROM tally.fold_batch AS b
             JOIN tally.counters AS c ON c.id = b.counter_id
             WHERE %2$L = ANY (c.granularities)
             GROUP BY 1, 2, 3
             ORDER BY 1, 2, 3
             ON CONFLICT (counter_id, key, bucket) DO UPDATE SET value = r.value + excluded.value',
            'rollup_' || v_g, v_g);
    END LOOP;
    -- The scratch table is empty again when this transaction ends, however
    -- it ends: emptied here on commit, rolled back with the fold otherwise.
    TRUNCATE tally.fold_batch;
    RETURN v_total;
END;
$$;

COMMENT ON FUNCTION tally._fold_into_rollups(integer) IS
'Internal: fold up to p_limit pending deltas into totals and rollups, all-or-nothing, under the fold lock.';
