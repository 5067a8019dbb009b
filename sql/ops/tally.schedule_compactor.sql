-- tally.schedule_compactor: install the pg_cron jobs that run tally:
--   tally-compactor   every minute: CALL tally.compact_loop(p_seconds, p_interval)
--                     (folds about every p_interval s for just under a minute;
--                     pg_cron never runs a job twice at once)
--   tally-compactor-0 .. tally-compactor-<p_workers - 1>  instead, with
--                     p_workers > 1: parallel folds, one loop per key slice
--                     (compact_loop(..., p_slice => k, p_slices => p_workers))
--   tally-maintenance p_maintenance_schedule: SELECT tally.maintain()
-- Idempotent: scheduling again updates the jobs and removes the compactor
-- jobs the new number of workers does not use. pg_cron lives only in the
-- database named by cron.database_name; elsewhere this refuses and says
-- what to run there instead (or run `tally compact --loop`).
CREATE OR REPLACE FUNCTION tally.schedule_compactor(
    p_seconds double precision DEFAULT 55,
    p_interval double precision DEFAULT 1,
    p_maintenance_schedule text DEFAULT '17 * * * *',
    p_workers integer DEFAULT 1
)
RETURNS TABLE (jobid bigint, jobname text, schedule text, command text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c_fn constant text := 'tally.schedule_compactor';
    v_compact text;
    v_names text[];
    -- pg_cron keeps its objects in schema cron whatever its extnamespace says
    v_cron name := (SELECT 'cron'::name FROM pg_catalog.pg_extension AS e
                    WHERE e.extname = 'pg_cron' AND to_regnamespace('cron') IS NOT NULL);
BEGIN
    IF p_seconds IS NULL OR p_seconds <= 0 OR p_seconds > 59 THEN
        RAISE EXCEPTION '%: p_seconds % must be in (0, 59]', c_fn, coalesce(p_seconds::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'the job starts every minute; 55 leaves it a margin to end before the next';
    END IF;
    IF p_interval IS NULL OR p_interval < 0.05 OR p_interval > p_seconds THEN
        RAISE EXCEPTION '%: p_interval % must be between 0.05 and p_seconds', c_fn, coalesce(p_interval::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'seconds between folds; 1 keeps the lag near a second';
    END IF;
    IF p_maintenance_schedule IS NULL OR p_maintenance_schedule = '' THEN
        RAISE EXCEPTION '%: maintenance schedule must not be NULL or empty', c_fn
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'a cron expression, e.g. ''17 * * * *'' (hourly)';
    END IF;
    IF p_workers IS NULL OR p_workers < 1 OR p_workers > tally._slice_buckets() THEN
        RAISE EXCEPTION '%: p_workers % must be between 1 and %', c_fn, coalesce(p_workers::text, 'NULL'),
                        tally._slice_buckets()
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'compactors folding at once, one key slice each; about one per core the folds may use';
    END IF;
    IF p_workers = 1 THEN
        v_names := ARRAY['tally-compactor'];
        v_compact := format('CALL tally.compact_loop(%s, %s)', p_seconds, p_interval);
    ELSE
        v_names := ARRAY(SELECT 'tally-compactor-' || k FROM generate_series(0, p_workers - 1) AS k ORDER BY k);
        v_compact := format('CALL tally.compact_loop(%s, %s, p_slice => <k>, p_slices => %s)',
                            p_seconds, p_interval, p_workers);
    END IF;
    IF v_cron IS NULL THEN
        RAISE EXCEPTION '%: pg_cron is not installed in database "%"', c_fn, current_database()
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('pg_cron lives in database %s (cron.database_name).',
                                  coalesce(current_setting('cron.database_name', true), '(pg_cron not loaded)')),
                  HINT = format('in that database run: SELECT cron.schedule_in_database(%L, %L, %L, %L)%s; '
                                'SELECT cron.schedule_in_database(%L, %L, %L, %L); '
                                'or run `tally compact --loop` next to the database',
                                v_names[1], '* * * * *', replace(v_compact, '<k>', '0'), current_database(),
                                CASE WHEN p_workers > 1 THEN ' (and so on for each worker up to p_slice => '
                                     || (p_workers - 1) || ')' ELSE '' END,
                                'tally-maintenance', p_maintenance_schedule, 'SELECT tally.maintain()',
                                current_database());
    END IF;
    -- compactor jobs of another number of workers go
    EXECUTE format(
        'SELECT count(%1$I.unschedule(j.jobid)) FROM %1$I.job AS j
         WHERE (j.jobname = ''tally-compactor'' OR j.jobname ~ ''^tally-compactor-[0-9]+$'')
           AND j.jobname <> ALL ($1) AND j.database = current_database()',
        v_cron)
    USING v_names;
    FOR v_worker IN 0 .. cardinality(v_names) - 1 LOOP
        EXECUTE format('SELECT %I.schedule($1, $2, $3)', v_cron)
        USING v_names[v_worker + 1], '* * * * *', replace(v_compact, '<k>', v_worker::text);
    END LOOP;
    EXECUTE format('SELECT %I.schedule($1, $2, $3)', v_cron)
        USING 'tally-maintenance', p_maintenance_schedule, 'SELECT tally.maintain()';
    RETURN QUERY EXECUTE format(
        'SELECT j.jobid, j.jobname::text, j.schedule, j.command FROM %I.job AS j
         WHERE (j.jobname IN (''tally-compactor'', ''tally-maintenance'') OR j.jobname ~ ''^tally-compactor-[0-9]+$'')
           AND j.database = current_database()
         ORDER BY j.jobname = ''tally-maintenance'', length(j.jobname), j.jobname', v_cron);
END;
$$;

COMMENT ON FUNCTION tally.schedule_compactor(double precision, double precision, text, integer) IS
'Install (or update) the pg_cron jobs tally-compactor (every minute, folds every p_interval s; with p_workers > 1 '
'tally-compactor-0 .. N-1, one key slice each) and tally-maintenance.';
