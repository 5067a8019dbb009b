-- tally._apply_batch: add the fold batch p_batch (this session's
-- pg_temp.tally_fold_batch, pre-aggregated per counter, key and minute) to
-- the totals and to every granularity each counter keeps (tally._fold_upserts,
-- the writes both modes share), then empty the batch. Called by
-- tally._fold_chunk only, in the fold's transaction.
--
-- The rollup partitions the batch needs are made first
-- (tally._ensure_partitions); the counters of the batch are looked up once.
-- Sorts are off here: the batch's index on (counter_id, key, minute) gives
-- every upsert its order (an incremental sort within a key for the coarser
-- buckets); the planner, which has no statistics for a temporary table,
-- would otherwise sort the whole batch again for each of them.
CREATE OR REPLACE FUNCTION tally._apply_batch(p_batch regclass)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
SET enable_sort = off
AS $$
DECLARE
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
    PERFORM tally._fold_upserts(p_batch::text, 'minute', v_counters);
    EXECUTE format('DELETE FROM %s', p_batch);  -- (a transaction may fold several chunks)
END;
$$;

COMMENT ON FUNCTION tally._apply_batch(regclass) IS
'Internal: upsert the pre-aggregated fold batch into totals and rollups, sorted, then empty it.';
