-- tally._apply_batch: add the fold batch p_batch (this session's
-- pg_temp.tally_fold_batch, pre-aggregated per counter, key and minute) to
-- the totals and to every granularity each counter keeps, then empty the
-- batch. Each upsert is aggregated by its conflict key (no statement touches
-- a row twice) and sorted. Called by tally._fold_chunk only, in the fold's
-- transaction.
--
-- The counters of the batch (and, per granularity, the oldest bucket each
-- keeps) are looked up once, not per row; the sorts of a chunk of the
-- default size (100,000 deltas) fit in work_mem (64MB here, for this
-- function only) instead of spilling to temporary files.
CREATE OR REPLACE FUNCTION tally._apply_batch(p_batch regclass)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET work_mem = '64MB'
AS $$
DECLARE
    v_g text;
    v_counters integer[];
BEGIN
    PERFORM tally._ensure_partitions(p_batch);

    -- Deltas of a counter dropped meanwhile (a writer that looked the
    -- counter up just before tally.drop_counter committed) are discarded:
    -- only the batch's counters that exist are folded. (drop_counter takes
    -- the fold lock exclusive: none is dropped while this fold runs.) (The
    -- batch is this session's temporary table, made by _fold_chunk:
    -- statements on it are dynamic, planned against that table.)
    EXECUTE format(
        'SELECT ARRAY(SELECT c.id FROM tally.counters AS c
                      WHERE c.id IN (SELECT DISTINCT f.counter_id FROM %s AS f)
                      ORDER BY c.id)', p_batch)
    INTO v_counters;
    EXECUTE format(
        'INSERT INTO tally.totals AS t (counter_id, key, value)
         SELECT b.counter_id, b.key, sum(b.delta)::bigint
         FROM %s AS b
         WHERE b.counter_id = ANY ($1)
         GROUP BY b.counter_id, b.key
         ORDER BY b.counter_id, b.key
         ON CONFLICT (counter_id, key) DO UPDATE SET value = t.value + excluded.value', p_batch)
    USING v_counters;

    FOR v_g IN SELECT g.name FROM tally.granularities AS g ORDER BY g.ord LOOP
        -- Buckets older than the counter's retention are skipped (the total
        -- and the coarser granularities still count them). MATERIALIZED: one
        -- _cutoff() call per counter, not one per row.
        EXECUTE format(
            'WITH kept AS MATERIALIZED (
                 SELECT c.id, tally._cutoff(c.id, %2$L) AS cutoff
                 FROM tally.counters AS c
                 WHERE %2$L = ANY (c.granularities)
                   AND c.id = ANY ($1))
             INSERT INTO tally.%1$I AS r (counter_id, key, bucket, value)
             SELECT b.counter_id, b.key, date_trunc(%2$L, b.minute), sum(b.delta)::bigint
             FROM %3$s AS b
             JOIN kept AS k ON k.id = b.counter_id
             WHERE b.minute >= k.cutoff
             GROUP BY 1, 2, 3
             ORDER BY 1, 2, 3
             ON CONFLICT (counter_id, key, bucket) DO UPDATE SET value = r.value + excluded.value',
            'rollup_' || v_g, v_g, p_batch)
        USING v_counters;
    END LOOP;
    EXECUTE format('DELETE FROM %s', p_batch);  -- (a transaction may fold several chunks)
END;
$$;

COMMENT ON FUNCTION tally._apply_batch(regclass) IS
'Internal: upsert the pre-aggregated fold batch into totals and rollups, sorted, then empty it.';
