-- search_path hijack: a caller puts a schema of its own ahead of pg_catalog
-- with look-alike functions and operators (now(), lower(), =, <, + ...)
-- that log every call. tally's functions pin search_path (SECURITY
-- DEFINER: pg_catalog, pg_temp) or schema-qualify everything (SECURITY
-- INVOKER), so none of them is ever run, and every result is right.
BEGIN;
SELECT plan(8);

CREATE SCHEMA evil;
CREATE TABLE evil.calls (what text);
GRANT ALL ON SCHEMA evil TO PUBLIC;
GRANT ALL ON evil.calls TO PUBLIC;
DO $$
DECLARE
    v_op record;
BEGIN
    FOR v_op IN
        SELECT o.oprname, o.oprleft::regtype AS l, o.oprright::regtype AS r, o.oprresult::regtype AS res,
               o.oid AS real_op, row_number() OVER () AS n
        FROM pg_catalog.pg_operator AS o
        WHERE o.oprnamespace = 'pg_catalog'::regnamespace
          AND o.oprname IN ('=', '<>', '<', '>', '<=', '>=', '+', '-', '~', '!~', '||')
          AND o.oprleft IN ('integer'::regtype, 'bigint'::regtype, 'smallint'::regtype, 'text'::regtype,
                            'timestamptz'::regtype, 'interval'::regtype, 'date'::regtype)
          AND o.oprright IN ('integer'::regtype, 'bigint'::regtype, 'smallint'::regtype, 'text'::regtype,
                             'timestamptz'::regtype, 'interval'::regtype, 'date'::regtype)
    LOOP
        EXECUTE format(
            'CREATE FUNCTION evil.op_%s(a %s, b %s) RETURNS %s LANGUAGE plpgsql AS $f$ '
            'BEGIN INSERT INTO evil.calls VALUES (%L); RETURN a OPERATOR(pg_catalog.%s) b; END $f$',
            v_op.n, v_op.l, v_op.r, v_op.res, format('operator %s(%s, %s)', v_op.oprname, v_op.l, v_op.r),
            v_op.oprname);
        EXECUTE format('CREATE OPERATOR evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = evil.op_%s)',
                       v_op.oprname, v_op.l, v_op.r, v_op.n);
    END LOOP;
END;
$$;
CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN INSERT INTO evil.calls VALUES ('now()'); RETURN pg_catalog.now() - interval '10 years'; END $$;
CREATE FUNCTION evil.lower(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN INSERT INTO evil.calls VALUES ('lower()'); RETURN 'hijacked'; END $$;
CREATE FUNCTION evil.octet_length(text) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN INSERT INTO evil.calls VALUES ('octet_length()'); RETURN 1; END $$;
CREATE FUNCTION evil.cardinality(anyarray) RETURNS integer LANGUAGE plpgsql AS $$
BEGIN INSERT INTO evil.calls VALUES ('cardinality()'); RETURN 1; END $$;
CREATE FUNCTION evil.pg_backend_pid() RETURNS integer LANGUAGE plpgsql AS $$
BEGIN INSERT INTO evil.calls VALUES ('pg_backend_pid()'); RETURN 0; END $$;
CREATE FUNCTION evil.date_trunc(text, timestamptz) RETURNS timestamptz LANGUAGE plpgsql AS $$
BEGIN INSERT INTO evil.calls VALUES ('date_trunc()'); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION evil.unnest(anyarray) RETURNS SETOF anyelement LANGUAGE plpgsql AS $$
BEGIN INSERT INTO evil.calls VALUES ('unnest()'); RETURN; END $$;
CREATE FUNCTION evil.current_setting(text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN INSERT INTO evil.calls VALUES ('current_setting()'); RETURN pg_catalog.current_setting($1); END $$;
SELECT is((SELECT count(*) FROM pg_catalog.pg_operator WHERE oprnamespace = 'evil'::regnamespace), 124::bigint,
          'precondition: a look-alike in schema evil for each of the 124 pg_catalog operators on those types');

SELECT tally.create_counter('sp', '{hour,day}');
SELECT tally.create_counter('sp_d', '{day}', true);
SELECT tally.create_counter('sp_t');
CREATE TABLE sp_follow (subject integer, follower integer, at timestamptz DEFAULT pg_catalog.now());
INSERT INTO sp_follow (subject, follower) VALUES (1, 1), (1, 2), (2, 3), (2, -4);

-- Everything below runs with evil ahead of pg_catalog (the test's own SQL
-- qualifies what it calls).
SET LOCAL search_path = evil, pg_catalog, pg_temp;
CREATE TEMP TABLE sp_calls AS
SELECT tally.increment_counter('sp', 'k', 2) AS a,
       tally.increment_counter('sp', 'k', 3, pg_catalog.now(), 'sp-1') AS b,
       tally.increment_counter('sp', 'k', 3, pg_catalog.now(), 'sp-1') AS c,
       tally.increment_counters('{sp,sp_d}', '{k,k}', '{10,20}', NULL, '{sp-2,sp-3}') AS d,
       tally.increment_counters('{sp,sp}', '{k,j}', '{100,1000}') AS e;
SELECT tally._fold();
CREATE TEMP TABLE sp_reads AS
SELECT tally.counter_value('sp', 'k') AS k,
       tally.counter_value('sp', 'j') AS j,
       tally.counter_value('sp_d', 'k') AS dk,
       (SELECT pg_catalog.sum(s.value) FROM tally.counter_series('sp', 'k', 'day',
           pg_catalog.now() OPERATOR(pg_catalog.-) interval '1 day',
           pg_catalog.now() OPERATOR(pg_catalog.+) interval '1 day') AS s) AS day_sum,
       (SELECT pg_catalog.count(*) FROM tally.top_keys('sp', 'all', NULL)) AS top_n;
SELECT tally.set_retention('sp', 'hour', '30 days');
SELECT * FROM tally.maintain();
SELECT * FROM tally.check_drift('sp');
SELECT * FROM tally.check_drift('sp', 10, '{k,j}');
SELECT * FROM tally.reconcile('sp', '{k,j}');
SELECT * FROM tally.health;
SELECT tally.drop_counter('sp_d');
CREATE TEMP TABLE sp_tracked AS
SELECT tally.track_table('sp_t', 'tap.sp_follow', 'subject', 'at', p_where => 'follower > 0') AS backfilled;
INSERT INTO tap.sp_follow (subject, follower) VALUES (1, 5), (3, 6), (3, -7);
UPDATE tap.sp_follow SET subject = 3 WHERE follower OPERATOR(pg_catalog.=) 1;
DELETE FROM tap.sp_follow WHERE follower OPERATOR(pg_catalog.=) 3;
ALTER TABLE tap.sp_follow RENAME COLUMN subject TO subject_id;
INSERT INTO tap.sp_follow (subject_id, follower) VALUES (3, 8);
TRUNCATE tap.sp_follow;
INSERT INTO tap.sp_follow (subject_id, follower) VALUES (1, 9), (1, 10), (1, -11);
SELECT tally.untrack_table('sp_t', 'tap.sp_follow');
SET LOCAL search_path = tap, public;

SELECT is_empty($$SELECT DISTINCT what FROM evil.calls$$, 'no look-alike function or operator of the caller ran');
SELECT results_eq(
    'SELECT a, b, c, d, e FROM sp_calls', $$VALUES (true, true, false, 2::bigint, 2::bigint)$$,
    'increments returned the right results'
);
SELECT results_eq(
    'SELECT k, j, dk, day_sum, top_n FROM sp_reads',
    $$VALUES (115::bigint, 1000::bigint, 20::bigint, 115::numeric, 2::bigint)$$,
    'values, series and top keys are right'
);
SELECT is(
    (SELECT pg_catalog.count(*) FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id
     WHERE c.name = 'sp' AND d.at < pg_catalog.now() - interval '1 day'),
    0::bigint,
    'no increment was written at a look-alike now()'
);
SELECT is((SELECT keep FROM tally.retention_policies WHERE counter = 'sp' AND granularity = 'hour'),
          '30 days'::interval, 'set_retention worked');
SELECT hasnt_table('tally', 'rollup_minute_evil', 'nothing odd was created');
SELECT results_eq(
    $$SELECT (SELECT backfilled FROM sp_tracked), tally.counter_value('sp_t', '1'), tally.counter_value('sp_t', '3')$$,
    $$VALUES (3::bigint, 2::bigint, 0::bigint)$$,
    'a table tracked, written, altered and truncated under that search_path counted right'
);

SELECT * FROM finish();
ROLLBACK;
