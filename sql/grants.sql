-- tally's privileges, applied after the code by every migration that
-- (re)creates it, so they always match the code at HEAD. Routines are
-- created with PostgreSQL's default (EXECUTE for PUBLIC) and revoked here,
-- in the same transaction.
--
--   tally_writer  may only increment;
--   tally_reader  may read values, series, top keys and the views;
--   tally_admin   both, plus create/drop counters, retention, sources and
--                 drift checks, compact, maintain and schedule; it may read
--                 (never write) the internal tables.
-- No role may execute an internal function (tally._*): only tally's own
-- SECURITY DEFINER functions call them, so nothing can be recorded or
-- corrected without doing the work that records it.
-- Nothing is granted to PUBLIC. Grant a role to an application's login:
--   GRANT tally_writer TO app_user;
-- The roles themselves are created by the migration (they are cluster-wide).

REVOKE ALL ON SCHEMA tally FROM public;
REVOKE ALL ON ALL TABLES IN SCHEMA tally FROM public;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA tally FROM public;
REVOKE ALL ON ALL ROUTINES IN SCHEMA tally FROM public;
REVOKE ALL ON ALL TABLES IN SCHEMA tally FROM tally_writer, tally_reader, tally_admin;
REVOKE ALL ON ALL ROUTINES IN SCHEMA tally FROM tally_writer, tally_reader, tally_admin;

GRANT USAGE ON SCHEMA tally TO tally_writer, tally_reader, tally_admin;

GRANT SELECT ON
tally.compactor_lag, tally.compactor_runs, tally.counter_status, tally.crash_reset_log, tally.deadlocks,
tally.drift, tally.health, tally.quarantined, tally.retention_policies
TO tally_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA tally TO tally_admin;

-- EXECUTE by routine name (every signature of it), so a changed signature
-- keeps its grant; a name listed here that does not exist is an error.
DO $grants$
DECLARE
    v_missing text;
    v_routine record;
BEGIN
    GRANT tally_writer, tally_reader TO tally_admin;
    -- (a migration through several revisions applies this more than once
    -- in one transaction)
    DROP TABLE IF EXISTS pg_temp.tally_routine_grants;
    CREATE TEMP TABLE tally_routine_grants (name text, grantee text) ON COMMIT DROP;
    INSERT INTO tally_routine_grants (name, grantee)
    SELECT u.name, 'tally_writer' FROM unnest(ARRAY['increment_counter', 'increment_counters']) AS u (name)
    UNION ALL
    SELECT u.name, 'tally_reader' FROM unnest(ARRAY[
        'counter_value', 'counter_values', 'counter_series', 'counter_window', 'top_keys', 'node_deadlocks',
        'pending_deltas', 'node_status'
    ]) AS u (name)
    UNION ALL
    SELECT u.name, 'tally_admin' FROM unnest(ARRAY[
        'create_counter', 'drop_counter', 'set_time_zone', 'set_backlog_limits', 'sample_backlog',
        'set_retention', 'reset_retention', 'set_event_window',
        'set_source', 'check_drift', 'reconcile', 'maintain', 'compact', 'compact_loop', 'compact_step',
        'schedule_compactor', 'unschedule_compactor', 'acknowledge_crash', 'release_quarantined',
        'track_table', 'track_table_online', 'backfill_tracked', 'untrack_table'
    ]) AS u (name);

    SELECT g.name INTO v_missing FROM tally_routine_grants AS g
    WHERE NOT EXISTS (
        SELECT FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'tally'::regnamespace AND p.proname = g.name
    )
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'tally grants: no routine tally.% to grant', v_missing;
    END IF;

    FOR v_routine IN
        SELECT p.oid::regprocedure AS sig, p.prokind, g.grantee
        FROM tally_routine_grants AS g
        JOIN pg_catalog.pg_proc AS p ON p.pronamespace = 'tally'::regnamespace AND p.proname = g.name
        ORDER BY 1, 3
    LOOP
        EXECUTE format('GRANT EXECUTE ON %s %s TO %I',
                       CASE v_routine.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                       v_routine.sig, v_routine.grantee);
    END LOOP;
END;
$grants$;

-- On a distributed install Citus checks the tables a view reads as the
-- role that reads the view, not as its owner (on the shards and on the
-- coordinator alike): there tally_reader may read tally's tables, as
-- tally_admin may everywhere (never write them), so that the views work.
DO $distributed$
BEGIN
    IF tally._distributed() THEN
        GRANT SELECT ON ALL TABLES IN SCHEMA tally TO tally_reader;
    END IF;
END;
$distributed$;
