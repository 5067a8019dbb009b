-- tally.unschedule_compactor: remove tally's pg_cron jobs (the compactor's,
-- one per worker, and the maintenance job); returns how many
-- were removed (0 when none, or when pg_cron is not in this database).
CREATE OR REPLACE FUNCTION tally.unschedule_compactor()
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_removed integer;
    -- pg_cron keeps its objects in schema cron whatever its extnamespace says
    v_cron name := (SELECT 'cron'::name FROM pg_catalog.pg_extension AS e
                    WHERE e.extname = 'pg_cron' AND to_regnamespace('cron') IS NOT NULL);
BEGIN
    IF v_cron IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE format(
        'SELECT count(%1$I.unschedule(j.jobid))::integer FROM %1$I.job AS j
         WHERE (j.jobname IN (''tally-compactor'', ''tally-maintenance'') OR j.jobname ~ ''^tally-compactor-[0-9]+$'')
           AND j.database = current_database()',
        v_cron)
    INTO v_removed;
    RETURN v_removed;
END;
$$;

COMMENT ON FUNCTION tally.unschedule_compactor() IS
'Remove tally''s pg_cron jobs from this database; returns how many were removed.';
