-- tally._ensure_partitions: make sure every rollup partition the current
-- fold batch needs exists, creating missing ones through pg_partman (late and
-- backfilled increments get their partition on demand). The rollups have no
-- default partition, so a missing partition is an error, never a silent
-- landing place. Runs inside the fold, under the fold lock.
CREATE OR REPLACE FUNCTION tally._ensure_partitions()
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET timezone = 'UTC'
AS $$
DECLARE
    v_g record;
    v_missing timestamptz[];
    v_created integer := 0;
BEGIN
    FOR v_g IN
        SELECT g.name, g.partition_interval, pc.datetime_string,
               CASE WHEN g.partition_interval >= interval '1 year' THEN 'year'
                    WHEN g.partition_interval >= interval '1 month' THEN 'month'
                    ELSE 'day' END AS unit
        FROM tally.granularities AS g
        JOIN partman.part_config AS pc ON pc.parent_table = 'tally.rollup_' || g.name
        ORDER BY g.ord
    LOOP
        -- MATERIALIZED: one _cutoff() call per counter, not one per row.
        WITH kept AS MATERIALIZED (
            SELECT c.id, tally._cutoff(c.id, v_g.name) AS cutoff
            FROM tally.counters AS c
            WHERE v_g.name = ANY (c.granularities)
              AND c.id IN (SELECT DISTINCT f.counter_id FROM tally.fold_batch AS f)
        )
        SELECT array_agg(p.start ORDER BY p.start) INTO v_missing
        FROM (
            SELECT DISTINCT date_trunc(v_g.unit, date_trunc(v_g.name, b.minute)) AS start
            FROM tally.fold_batch AS b
            JOIN kept AS k ON k.id = b.counter_id
            WHERE b.minute >= k.cutoff
        ) AS p
        WHERE to_regclass(format('tally.%I', 'rollup_' || v_g.name || '_p' || to_char(p.start, v_g.datetime_string))) IS NULL;
        IF v_missing IS NOT NULL THEN
            PERFORM partman.create_partition_time('tally.rollup_' || v_g.name, v_missing, false);
            v_created := v_created + cardinality(v_missing);
        END IF;
    END LOOP;
    RETURN v_created;
END;
$$;

COMMENT ON FUNCTION tally._ensure_partitions() IS
'Internal: create (through pg_partman) every rollup partition the fold batch needs.';
