-- Least privilege: tally_writer may only increment, tally_reader may only
-- read values, series, top keys and the views, tally_admin may do both and
-- administer; PUBLIC gets nothing. Checked from the catalog and by doing it
-- under SET ROLE (allowed and refused, 42501).
BEGIN;
SELECT plan(48);

-- The roles
SELECT has_role('tally_writer', 'role tally_writer exists');
SELECT has_role('tally_reader', 'role tally_reader exists');
SELECT has_role('tally_admin', 'role tally_admin exists');
SELECT is_empty(
    $$SELECT rolname FROM pg_catalog.pg_roles
      WHERE rolname IN ('tally_writer', 'tally_reader', 'tally_admin')
        AND (rolcanlogin OR rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls)$$,
    'the three roles are NOLOGIN and have no attribute: grant them to logins'
);
SELECT is_member_of('tally_writer', ARRAY['tally_admin'], 'tally_admin is a writer');
SELECT is_member_of('tally_reader', ARRAY['tally_admin'], 'tally_admin is a reader');

-- Nothing for PUBLIC
SELECT is_empty(
    $$SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
      WHERE p.pronamespace = 'tally'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE')$$,
    'PUBLIC may execute no routine of tally'
);
SELECT is_empty(
    $$SELECT c.oid::regclass FROM pg_catalog.pg_class AS c
      WHERE c.relnamespace = 'tally'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'S', 'u')
        AND has_table_privilege('public', c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE')$$,
    'PUBLIC has no privilege on any table, view or sequence of tally'
);
SELECT ok(NOT has_schema_privilege('public', 'tally', 'USAGE'), 'PUBLIC has no USAGE on schema tally');

-- Internal tables are out of the writer's and the reader's reach
SELECT is_empty(
    $$SELECT r.rolname, c.oid::regclass FROM pg_catalog.pg_class AS c
      CROSS JOIN (VALUES ('tally_writer'), ('tally_reader')) AS r (rolname)
      WHERE c.relnamespace = 'tally'::regnamespace AND c.relkind IN ('r', 'p', 'S', 'u')
        AND has_table_privilege(r.rolname, c.oid, 'SELECT,INSERT,UPDATE,DELETE,TRUNCATE')$$,
    'tally_writer and tally_reader have no privilege on any table of tally'
);
SELECT is_empty(
    $$SELECT c.oid::regclass FROM pg_catalog.pg_class AS c
      WHERE c.relnamespace = 'tally'::regnamespace AND c.relkind IN ('r', 'p', 'S', 'u')
        AND has_table_privilege('tally_admin', c.oid, 'INSERT,UPDATE,DELETE,TRUNCATE')$$,
    'tally_admin may read the internal tables but never write them'
);
SELECT set_eq(
    $$SELECT p.proname::text FROM pg_catalog.pg_proc AS p
      WHERE p.pronamespace = 'tally'::regnamespace AND has_function_privilege('tally_writer', p.oid, 'EXECUTE')
        AND NOT pg_has_role('tally_writer', 'tally_reader', 'MEMBER')$$,
    ARRAY['increment_counter', 'increment_counters'],
    'tally_writer may execute exactly increment_counter and increment_counters'
);
SELECT set_eq(
    $$SELECT p.proname::text FROM pg_catalog.pg_proc AS p
      WHERE p.pronamespace = 'tally'::regnamespace AND has_function_privilege('tally_reader', p.oid, 'EXECUTE')$$,
    ARRAY['counter_value', 'counter_values', 'counter_series', 'counter_window', 'top_keys', 'node_deadlocks',
          'pending_deltas', 'node_status'],
    'tally_reader may execute exactly the read functions'
);
SELECT set_eq(
    $$SELECT p.proname::text FROM pg_catalog.pg_proc AS p
      WHERE p.pronamespace = 'tally'::regnamespace AND has_function_privilege('tally_admin', p.oid, 'EXECUTE')$$,
    ARRAY['increment_counter', 'increment_counters', 'counter_value', 'counter_values', 'counter_series',
          'counter_window', 'top_keys', 'node_deadlocks', 'pending_deltas', 'node_status',
          'create_counter', 'drop_counter', 'set_time_zone', 'set_backlog_limits', 'sample_backlog', 'set_retention',
          'reset_retention', 'set_event_window', 'set_source',
          'check_drift', 'reconcile', 'maintain', 'compact', 'compact_loop', 'compact_step', 'schedule_compactor',
          'unschedule_compactor', 'acknowledge_crash', 'release_quarantined', 'track_table', 'track_table_online',
          'backfill_tracked', 'untrack_table'],
    'tally_admin may execute exactly what the README lists: write, read, and the administration functions'
);
SELECT is_empty(
    $$SELECT r.rolname, p.oid::regprocedure FROM pg_catalog.pg_proc AS p
      CROSS JOIN (VALUES ('tally_writer'), ('tally_reader'), ('tally_admin')) AS r (rolname)
      WHERE p.pronamespace = 'tally'::regnamespace AND p.proname LIKE '\_%'
        AND has_function_privilege(r.rolname, p.oid, 'EXECUTE')$$,
    'no role may execute an internal function (tally._*): only tally''s own definer functions call them'
);

-- Every internal function refused under SET ROLE tally_admin (called with
-- NULL arguments of its types: the privilege check comes first).
CREATE TEMP TABLE priv_internal ON COMMIT DROP AS
SELECT p.oid::regprocedure::text AS sig,
       format('SELECT tally.%I(%s)', p.proname,
              (SELECT string_agg(format('NULL::%s', t::regtype), ', ' ORDER BY o)
               FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS a (t, o))) AS call,
       NULL::text AS outcome
FROM pg_catalog.pg_proc AS p
WHERE p.pronamespace = 'tally'::regnamespace AND p.proname LIKE '\_%';
GRANT ALL ON priv_internal TO tally_admin;
SET LOCAL ROLE tally_admin;
DO $$
DECLARE
    v record;
BEGIN
    FOR v IN SELECT * FROM priv_internal LOOP
        BEGIN
            EXECUTE v.call;
            UPDATE priv_internal SET outcome = 'ran' WHERE sig = v.sig;
        EXCEPTION
            WHEN insufficient_privilege THEN
                UPDATE priv_internal SET outcome = '42501' WHERE sig = v.sig;
            WHEN OTHERS THEN
                UPDATE priv_internal SET outcome = SQLSTATE WHERE sig = v.sig;
        END;
    END LOOP;
END;
$$;
RESET ROLE;
SELECT is_empty(
    $$SELECT sig, outcome FROM priv_internal WHERE outcome IS DISTINCT FROM '42501'$$,
    'under SET ROLE tally_admin, calling any internal function is refused with 42501'
);
SELECT is((SELECT count(*) FROM priv_internal), 87::bigint, 'and that covered all 87 internal functions');

-- Under SET ROLE
GRANT USAGE ON SCHEMA tap TO tally_writer, tally_reader, tally_admin;
-- (this session's temporary schema by its own name: a Citus coordinator
-- reads "pg_temp" in GRANT ... IN SCHEMA literally)
DO $$ BEGIN
    EXECUTE format('GRANT ALL ON ALL TABLES IN SCHEMA %I TO tally_writer, tally_reader, tally_admin',
                   pg_my_temp_schema()::regnamespace);
    EXECUTE format('GRANT ALL ON ALL SEQUENCES IN SCHEMA %I TO tally_writer, tally_reader, tally_admin',
                   pg_my_temp_schema()::regnamespace);
END $$;
SELECT tally.create_counter('priv');
SELECT tally.increment_counter('priv', 'k', 5);

SET LOCAL ROLE tally_writer;
SELECT is(tally.increment_counter('priv', 'k'), true, 'writer: increment_counter');
SELECT is(tally.increment_counters('{priv}', '{k}', '{1}', NULL, '{w-1}'), 1::bigint, 'writer: increment_counters');
SELECT throws_ok($$SELECT tally.counter_value('priv', 'k')$$, '42501', NULL, 'writer: counter_value refused');
SELECT throws_ok($$SELECT * FROM tally.health$$, '42501', NULL, 'writer: the views refused');
SELECT throws_ok($$SELECT tally.create_counter('w_made')$$, '42501', NULL, 'writer: create_counter refused');
SELECT throws_ok($$SELECT tally.drop_counter('priv')$$, '42501', NULL, 'writer: drop_counter refused');
SELECT throws_ok(
    $$INSERT INTO tally.delta (shard, counter_id, key, delta, at) VALUES (0, 1, 'k', 1000, now())$$,
    '42501', NULL, 'writer: writing a delta shard directly refused'
);
SELECT throws_ok($$SELECT count(*) FROM tally.counters$$, '42501', NULL, 'writer: reading tally.counters refused');
SELECT throws_ok($$SELECT tally._fold()$$, '42501', NULL, 'writer: folding refused');
SELECT throws_ok($$SELECT tally.maintain()$$, '42501', NULL, 'writer: maintain refused');
RESET ROLE;

SET LOCAL ROLE tally_reader;
SELECT is(tally.counter_value('priv', 'k'), 7::bigint, 'reader: counter_value');
SELECT lives_ok(
    $$SELECT * FROM tally.counter_series('priv', 'k', 'hour', now() - interval '1 hour', now() + interval '1 hour')$$,
    'reader: counter_series'
);
SELECT lives_ok($$SELECT * FROM tally.top_keys('priv', 'all', NULL)$$, 'reader: top_keys');
SELECT lives_ok(
    $$SELECT * FROM tally.health, tally.compactor_lag, tally.compactor_runs, tally.deadlocks, tally.drift,
      tally.quarantined, tally.retention_policies, tally.counter_status, tally.crash_reset_log$$,
    'reader: every view'
);
SELECT throws_ok($$SELECT tally.increment_counter('priv', 'k')$$, '42501', NULL, 'reader: increment refused');
SELECT throws_ok($$SELECT tally.set_retention('priv', 'minute', '1 day')$$, '42501', NULL,
                 'reader: set_retention refused');
SELECT throws_ok($$SELECT * FROM tally.totals$$, '42501', NULL, 'reader: reading tally.totals refused');
SELECT throws_ok($$SELECT * FROM tally.sources$$, '42501', NULL, 'reader: reading tally.sources refused');
SELECT throws_ok($$SELECT tally.check_drift('priv')$$, '42501', NULL, 'reader: check_drift refused');
RESET ROLE;

SET LOCAL ROLE tally_admin;
SELECT lives_ok($$SELECT tally.create_counter('admin_made', '{day}')$$, 'admin: create_counter');
SELECT lives_ok($$SELECT tally.set_retention('admin_made', 'day', '400 days')$$, 'admin: set_retention');
SELECT lives_ok($$SELECT tally.set_event_window(8)$$, 'admin: set_event_window');
SELECT is(tally.increment_counter('admin_made', 'k', 3), true, 'admin: increment');
SELECT is(tally.counter_value('admin_made', 'k'), 3::bigint, 'admin: read');
SELECT lives_ok($$SELECT * FROM tally.check_drift('priv')$$, 'admin: check_drift');
SELECT lives_ok($$SELECT * FROM tally.maintain()$$, 'admin: maintain');
SELECT lives_ok($$SELECT count(*) FROM tally.fold_runs$$, 'admin: read an internal table');
SELECT throws_ok($$DELETE FROM tally.totals$$, '42501', NULL, 'admin: writing an internal table refused');
SELECT lives_ok($$SELECT tally.drop_counter('admin_made')$$, 'admin: drop_counter');
RESET ROLE;

SELECT ok(has_function_privilege('tally_admin', 'tally.compact(integer, integer, integer, integer)', 'EXECUTE'),
          'admin: may CALL tally.compact (it commits, so it cannot run inside this test''s transaction)');
SELECT ok(NOT has_function_privilege('tally_writer', 'tally.compact(integer, integer, integer, integer)', 'EXECUTE')
          AND NOT has_function_privilege('tally_reader', 'tally.compact(integer, integer, integer, integer)', 'EXECUTE'),
          'writer and reader may not CALL tally.compact');

SELECT * FROM finish();
ROLLBACK;
