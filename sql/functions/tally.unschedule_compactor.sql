-- tally.unschedule_compactor: remove tally's pg_cron jobs; returns how many
-- were removed (0 when none, or when pg_cron is not in this database).
CREATE OR REPLACE FUNCTION tally.unschedule_compactor()
RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_removed integer;
BEGIN
    IF to_regclass('cron.job') IS NULL THEN
        RETURN 0;
    END IF;
    EXECUTE
        'SELECT count(cron.unschedule(j.jobid))::integer FROM cron.job AS j
         WHERE j.jobname IN (''tally-compactor'', ''tally-maintenance'') AND j.database = current_database()'
    INTO v_removed;
    RETURN v_removed;
END;
$$;

COMMENT ON FUNCTION tally.unschedule_compactor() IS
'Remove tally''s pg_cron jobs from this database; returns how many were removed.';
