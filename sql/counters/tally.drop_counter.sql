-- tally.drop_counter: remove a counter with its pending deltas, rollups,
-- total and the deltas a fold set aside for it (tally.quarantined). Takes
-- the fold lock so no fold in flight can write it back. A table it counts
-- stops being counted first (tally._untrack).
CREATE OR REPLACE FUNCTION tally.drop_counter(p_name text)
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_counter tally.counters := tally._lookup_counter('tally.drop_counter', p_name);
    v_g text;
BEGIN
    PERFORM pg_advisory_xact_lock(tally._fold_lock_key());
    PERFORM tally._untrack(v_counter.id);
    -- On Citus the reference table counters is changed after the
    -- distributed tables, in one transaction: one connection per worker.
    -- (Elsewhere a setting of no consequence, for this transaction.)
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    DELETE FROM tally.delta AS d WHERE d.counter_id = v_counter.id;
    DELETE FROM tally.totals AS t WHERE t.counter_id = v_counter.id;
    FOR v_g IN SELECT g.name FROM tally.granularities AS g ORDER BY g.ord LOOP
        EXECUTE format('DELETE FROM tally.%I WHERE counter_id = $1', 'rollup_' || v_g) USING v_counter.id;
    END LOOP;
    DELETE FROM tally.quarantine AS q WHERE q.counter_id = v_counter.id;
    IF to_regprocedure(format('tally.%I(text)', 'source_' || v_counter.id)) IS NOT NULL THEN
        EXECUTE format('DROP FUNCTION tally.%I(text)', 'source_' || v_counter.id);
    END IF;
    DELETE FROM tally.counters AS c WHERE c.id = v_counter.id;
END;
$$;

COMMENT ON FUNCTION tally.drop_counter(text) IS
'Remove a counter and everything counted for it (pending deltas, rollups, total).';
