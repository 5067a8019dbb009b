-- tally._fold_distributed_apply: the upserts of a distributed fold step
-- (tally._fold_distributed): the pending deltas summed per key into totals
-- and per key and bucket into each rollup, each statement grouped by the
-- distribution column, so Citus runs it on every shard where the shard is.
-- Deltas of a counter dropped meanwhile are discarded; buckets older than a
-- counter's retention are skipped, as on a single node (tally._apply_batch).
CREATE OR REPLACE FUNCTION tally._fold_distributed_apply()
RETURNS void
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    v_g text;
    v_ids integer[];
    v_cutoffs timestamptz[];
BEGIN
    INSERT INTO tally.totals AS t (counter_id, key, value)
    SELECT d.counter_id, d.key, sum(d.delta)::bigint
    FROM tally.delta AS d
    WHERE d.counter_id IN (SELECT c.id FROM tally.counters AS c)
    GROUP BY d.counter_id, d.key
    ON CONFLICT (counter_id, key) DO UPDATE SET value = t.value + excluded.value;

    FOR v_g IN SELECT g.name FROM tally.granularities AS g ORDER BY g.ord LOOP
        -- Each counter's cutoff, here: the statement runs on the workers.
        SELECT array_agg(c.id ORDER BY c.id), array_agg(tally._cutoff(c.id, v_g) ORDER BY c.id)
        INTO v_ids, v_cutoffs
        FROM tally.counters AS c WHERE v_g = ANY (c.granularities);
        CONTINUE WHEN v_ids IS NULL;
        EXECUTE format(
            'INSERT INTO tally.%1$I AS r (counter_id, key, bucket, value)
             SELECT d.counter_id, d.key, date_trunc(%2$L, d.at, ''UTC''), sum(d.delta)::bigint
             FROM tally.delta AS d
             JOIN unnest($1, $2) AS k (id, cutoff) ON k.id = d.counter_id
             WHERE d.at >= k.cutoff
             GROUP BY d.counter_id, d.key, date_trunc(%2$L, d.at, ''UTC'')
             ON CONFLICT (counter_id, key, bucket) DO UPDATE SET value = r.value + excluded.value',
            'rollup_' || v_g, v_g)
        USING v_ids, v_cutoffs;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION tally._fold_distributed_apply() IS
'Internal: the pushed-down upserts of a distributed fold step into totals and every rollup.';
