-- tally._fold_upserts: the fold's writes, once for both modes. Adds the
-- deltas of p_source (a relation or subquery with counter_id, key, delta
-- and the time column p_at) of the counters p_counters (others are
-- discarded: a counter dropped meanwhile) to the all-time totals and to
-- every granularity each counter keeps, from the oldest bucket it keeps
-- (its retention: an older increment still counts in the total and the
-- coarser granularities). Each upsert is aggregated by its conflict key (no
-- statement touches a row twice) and sorted; tables in a fixed order.
--   one node:  the chunk pre-aggregated per (counter, key, minute) in this
--              session's batch table (tally._apply_batch);
--   Citus:     tally.delta itself: every statement groups by the
--              distribution column, so each runs on every shard, on its
--              worker (tally._fold_step.citus.sql).
-- Buckets follow each counter's time zone (tally.counters.time_zone), named
-- in every date_trunc() so a statement run on a worker cuts them the same
-- whatever its session's time zone.
CREATE OR REPLACE FUNCTION tally._fold_upserts(p_source text, p_at name, p_counters integer[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET work_mem = '64MB'
SET jit = off
AS $$
DECLARE
    v_g text;
    v_ids integer[];
    v_cutoffs timestamptz[];
    v_zones text[];
BEGIN
    EXECUTE format(
        'INSERT INTO tally.totals AS t (counter_id, key, value)
         SELECT b.counter_id, b.key, sum(b.delta)::bigint
         FROM %s AS b
         WHERE b.counter_id = ANY ($1)
         GROUP BY b.counter_id, b.key
         ORDER BY b.counter_id, b.key
         ON CONFLICT (counter_id, key) DO UPDATE SET value = t.value + excluded.value', p_source)
    USING p_counters;
    FOR v_g IN SELECT g.name FROM tally.granularities AS g ORDER BY g.ord LOOP
        -- each counter's oldest bucket kept, looked up once (not per row)
        SELECT array_agg(c.id ORDER BY c.id), array_agg(tally._cutoff(c.id, v_g) ORDER BY c.id),
               array_agg(c.time_zone ORDER BY c.id)
        INTO v_ids, v_cutoffs, v_zones
        FROM tally.counters AS c
        WHERE v_g = ANY (c.granularities) AND c.id = ANY (p_counters);
        CONTINUE WHEN v_ids IS NULL;
        EXECUTE format(
            'INSERT INTO tally.%1$I AS r (counter_id, key, bucket, value)
             SELECT b.counter_id, b.key, date_trunc(%2$L, b.%3$I, k.zone), sum(b.delta)::bigint
             FROM %4$s AS b
             JOIN unnest($1, $2, $3) AS k (id, cutoff, zone) ON k.id = b.counter_id
             WHERE b.%3$I >= k.cutoff
             GROUP BY b.counter_id, b.key, date_trunc(%2$L, b.%3$I, k.zone)
             ORDER BY b.counter_id, b.key, date_trunc(%2$L, b.%3$I, k.zone)
             ON CONFLICT (counter_id, key, bucket) DO UPDATE SET value = r.value + excluded.value',
            'rollup_' || v_g, v_g, p_at, p_source)
        USING v_ids, v_cutoffs, v_zones;
    END LOOP;
END;
$$;

COMMENT ON FUNCTION tally._fold_upserts(text, name, integer[]) IS
'Internal: the fold''s sorted upserts of a source of deltas into totals and every rollup (both modes).';
