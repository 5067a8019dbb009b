-- tally._ensure_partitions: make sure every rollup partition the current
-- fold batch p_batch (this session's pg_temp.tally_fold_batch) needs exists,
-- creating missing ones through pg_partman (late and backfilled increments
-- get their partition on demand). The rollups have no default partition, so
-- a missing partition is an error, never a silent landing place. Folds of
-- different slices run at once: a fold that finds a partition missing takes
-- the partition lock (tally._partition_lock_key, held to its commit), then
-- looks again (another slice's fold may have created it meanwhile) and
-- creates what is still missing. The catalog is read by query, with the
-- statement's snapshot, so a partition committed meanwhile is seen.
--
-- The batch is read once: its (counter, UTC day) pairs with the latest
-- minute of each, a few hundred rows at most, from which the partitions of
-- every granularity follow (a partition spans whole days, and a day holds a
-- minute the counter keeps exactly when its latest minute is kept).
CREATE OR REPLACE FUNCTION tally._ensure_partitions(p_batch regclass)
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    v_days text := 'pg_temp.tally_fold_days';
    v_g record;
    v_missing timestamptz[];
    v_locked boolean := false;
    v_created integer := 0;
BEGIN
    IF to_regclass(v_days) IS NULL THEN
        CREATE TEMPORARY TABLE tally_fold_days (
            counter_id integer NOT NULL,
            day timestamptz NOT NULL,
            last timestamptz NOT NULL
        ) ON COMMIT DELETE ROWS;
    END IF;
    EXECUTE format('DELETE FROM %s', v_days);  -- (a transaction may fold several chunks)
    EXECUTE format(
        'INSERT INTO %s (counter_id, day, last)
         SELECT b.counter_id, date_trunc(''day'', b.minute), max(b.minute)
         FROM %s AS b
         GROUP BY 1, 2', v_days, p_batch);
    FOR v_g IN
        SELECT g.name, g.partition_interval, pc.datetime_string,
               CASE WHEN g.partition_interval >= interval '1 year' THEN 'year'
                    WHEN g.partition_interval >= interval '1 month' THEN 'month'
                    ELSE 'day' END AS unit
        FROM tally.granularities AS g
        JOIN partman.part_config AS pc ON pc.parent_table = 'tally.rollup_' || g.name
        ORDER BY g.ord
    LOOP
        LOOP
            -- MATERIALIZED: one _cutoff() call per counter, not one per row.
            -- (Dynamic: the days are this session's temporary table.) A
            -- partition spans whole UTC days (its unit is a day at least),
            -- so the partition of a day's buckets is the partition of the day.
            EXECUTE format(
                'WITH kept AS MATERIALIZED (
                     SELECT c.id, tally._cutoff(c.id, $1) AS cutoff
                     FROM tally.counters AS c
                     WHERE $1 = ANY (c.granularities)
                       AND c.id IN (SELECT DISTINCT f.counter_id FROM %1$s AS f)
                 )
                 SELECT array_agg(p.start ORDER BY p.start)
                 FROM (
                     SELECT DISTINCT date_trunc($2, date_trunc($1, d.day)) AS start
                     FROM %1$s AS d
                     JOIN kept AS k ON k.id = d.counter_id
                     WHERE d.last >= k.cutoff
                 ) AS p
                 WHERE NOT EXISTS (
                     SELECT FROM pg_catalog.pg_class AS r
                     WHERE r.relnamespace = ''tally''::regnamespace
                       AND r.relname = ''rollup_'' || $1 || ''_p'' || to_char(p.start, $3)
                 )', v_days)
            INTO v_missing
            USING v_g.name, v_g.unit, v_g.datetime_string;
            EXIT WHEN v_missing IS NULL OR v_locked;
            PERFORM pg_advisory_xact_lock(tally._partition_lock_key());
            v_locked := true;
        END LOOP;
        IF v_missing IS NOT NULL THEN
            PERFORM partman.create_partition_time('tally.rollup_' || v_g.name, v_missing, false);
            v_created := v_created + cardinality(v_missing);
        END IF;
    END LOOP;
    RETURN v_created;
END;
$$;

COMMENT ON FUNCTION tally._ensure_partitions(regclass) IS
'Internal: create (through pg_partman) every rollup partition the fold batch needs, one fold at a time.';
