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
-- The batch is read once: its (counter, UTC day) pairs with the first and
-- the latest minute of each, a few hundred rows at most, from which the
-- partitions of every granularity follow. A partition spans whole UTC days
-- (a month or a year at most); the buckets of one UTC day's minutes, in the
-- counter's time zone, run from the bucket of its first minute to the
-- bucket of its latest, and lie in one partition or two neighbouring ones:
-- those of the first bucket kept (not before the counter's cutoff) and of
-- the latest.
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
            first timestamptz NOT NULL,
            last timestamptz NOT NULL
        ) ON COMMIT DELETE ROWS;
    END IF;
    EXECUTE format('DELETE FROM %s', v_days);  -- (a transaction may fold several chunks)
    EXECUTE format(
        'INSERT INTO %s (counter_id, day, first, last)
         SELECT b.counter_id, date_trunc(''day'', b.minute), min(b.minute), max(b.minute)
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
            -- (Dynamic: the days are this session's temporary table.) The
            -- partition of a bucket is the one of its UTC day (date_trunc()
            -- without a zone: this function runs in UTC).
            EXECUTE format(
                'WITH kept AS MATERIALIZED (
                     SELECT c.id, tally._cutoff(c.id, $1) AS cutoff, c.time_zone AS tz
                     FROM tally.counters AS c
                     WHERE $1 = ANY (c.granularities)
                       AND c.id IN (SELECT DISTINCT f.counter_id FROM %1$s AS f)
                 ),
                 ends AS (
                     SELECT k.cutoff, date_trunc($1, d.first, k.tz) AS lo, date_trunc($1, d.last, k.tz) AS hi
                     FROM %1$s AS d
                     JOIN kept AS k ON k.id = d.counter_id
                 )
                 SELECT array_agg(p.start ORDER BY p.start)
                 FROM (
                     SELECT DISTINCT date_trunc($2, b.bucket) AS start
                     FROM ends AS e
                     CROSS JOIN LATERAL (VALUES (greatest(e.lo, e.cutoff)), (e.hi)) AS b (bucket)
                     WHERE e.hi >= e.cutoff
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
