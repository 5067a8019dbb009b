-- tally.set_source: register (or replace, or with NULL remove) the source of
-- truth of a counter: a query taking the key as $1 and returning the true
-- count, stored in tally.sources with the role that registered it; used by
-- check_drift and reconcile only as that role; refusals change nothing.
BEGIN;
SELECT plan(26);

SET LOCAL timezone = 'UTC';

SELECT tally.create_counter('ss');
SELECT tally.create_counter('ss_other');
CREATE TEMP TABLE ss_id ON COMMIT DROP AS SELECT id FROM tally.counters WHERE name = 'ss';
CREATE TABLE public.pgtap_follow (subject text NOT NULL, follower text NOT NULL);
INSERT INTO public.pgtap_follow VALUES ('a', 'x'), ('a', 'y'), ('b', 'x');

SELECT function_returns('tally', 'set_source', ARRAY['text', 'text', 'text'], 'void', 'set_source returns void');

-- Register
SELECT is_empty('SELECT FROM tally.sources', 'a fresh install has no source registered');
SELECT lives_ok(
    $$SELECT tally.set_source('ss', 'SELECT count(*) FROM public.pgtap_follow WHERE subject = $1')$$,
    'a query using the key as $1 is accepted'
);
SELECT results_eq(
    'SELECT counter_id, query, registered_by, registered_at FROM tally.sources',
    $$SELECT id, 'SELECT count(*) FROM public.pgtap_follow WHERE subject = $1'::text, session_user, now() FROM ss_id$$,
    'it is stored in tally.sources with the registering role (session_user) and the time'
);
SELECT results_eq(
    'SELECT counter, has_source FROM tally.drift',
    $$VALUES ('ss'::text, true), ('ss_other', false)$$,
    'tally.drift shows which counter has a source'
);

-- Used by check_drift and reconcile
SELECT tally.increment_counter('ss', 'a', 2, now() - interval '1 hour');
SELECT tally.increment_counter('ss', 'b', 3, now() - interval '1 hour');
CREATE TEMP TABLE ss_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT results_eq(
    $$SELECT key, kind, expected, actual FROM tally.check_drift('ss')$$,
    $$VALUES ('b'::text, 'source'::text, 1::bigint, 3::bigint)$$,
    'check_drift runs the query with each key as $1: b is off by 2'
);
SELECT results_eq(
    $$SELECT key, delta, reason FROM tally.reconcile('ss', '{a,b}')$$,
    $$VALUES ('b'::text, -2::bigint, 'source'::text)$$,
    'reconcile corrects toward it'
);
SELECT is(tally.counter_value('ss', 'b'), 1::bigint, 'the counter now agrees with the source');

-- Replace
SELECT tally.set_source('ss', 'SELECT 2 * count(*) FROM public.pgtap_follow WHERE subject = $1');
SELECT results_eq(
    'SELECT count(*), min(query) FROM tally.sources',
    $$VALUES (1::bigint, 'SELECT 2 * count(*) FROM public.pgtap_follow WHERE subject = $1'::text)$$,
    'registering again replaces the query (one source per counter)'
);
UPDATE tally.sources SET registered_by = 'someone_else', registered_at = now() - interval '1 day';
SELECT tally.set_source('ss', 'SELECT count(*) FROM public.pgtap_follow WHERE subject = $1');
SELECT results_eq(
    'SELECT registered_by, registered_at FROM tally.sources',
    $$VALUES (session_user, now())$$,
    'and takes over the registering role and time'
);
SELECT is_empty($$SELECT * FROM tally.check_drift('ss')$$, 'so this role may run the check again');

-- Refusals
CREATE TEMP TABLE ss_before ON COMMIT DROP AS SELECT * FROM tally.sources;
SELECT throws_ok(
    $$SELECT tally.set_source('ss', 'SELECT count(*) FROM public.pgtap_follow')$$, '22023',
    'tally.set_source: the source query of "ss" must use the key as $1',
    'a query without $1 is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT tally.set_source('ss', '')$$, '22023', NULL, 'an empty query is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT tally.set_source('ss', '   ')$$, '22023', NULL, 'a blank query is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT tally.set_source('ss_nope', 'SELECT count(*) FROM public.pgtap_follow WHERE subject = $1')$$, '42704',
    'tally.set_source: unknown counter "ss_nope"',
    'an unknown counter is refused with undefined_object'
);
SELECT throws_ok(
    $$SELECT tally.set_source(NULL, 'SELECT count(*) FROM public.pgtap_follow WHERE subject = $1')$$, '22004',
    'tally.set_source: counter name must not be NULL or empty',
    'a NULL counter name is refused with null_value_not_allowed'
);
SELECT throws_ok(
    $$SELECT tally.set_source('', 'SELECT 1 WHERE $1 IS NOT NULL')$$, '22004', NULL,
    'an empty counter name is refused'
);
SELECT throws_ok(
    $$SELECT tally.set_source('ss_nope', NULL)$$, '42704', NULL,
    'removing the source of an unknown counter is refused too'
);
SELECT results_eq('SELECT * FROM tally.sources', 'SELECT * FROM ss_before', 'the refusals changed nothing');

-- Remove
SELECT lives_ok($$SELECT tally.set_source('ss', NULL)$$, 'NULL removes the source');
SELECT is_empty('SELECT FROM tally.sources', 'tally.sources is empty again');
SELECT is((SELECT has_source FROM tally.drift WHERE counter = 'ss'), false, 'tally.drift: no source any more');
SELECT lives_ok($$SELECT tally.set_source('ss', NULL)$$, 'removing a source that is not there is a no-op');
SELECT tally.increment_counter('ss', 'b', 100);
SELECT is_empty($$SELECT * FROM tally.check_drift('ss')$$, 'without a source check_drift compares nothing with it');
SELECT results_eq(
    $$SELECT has_source, drifting_keys FROM tally.drift WHERE counter = 'ss'$$, $$VALUES (false, NULL::integer)$$,
    'and tally.drift shows drifting_keys NULL (not checked)'
);

-- A dropped counter takes its source along.
SELECT tally.set_source('ss', 'SELECT count(*) FROM public.pgtap_follow WHERE subject = $1');
SELECT tally.drop_counter('ss');
SELECT is_empty('SELECT FROM tally.sources', 'dropping a counter removes its source');

SELECT * FROM finish();
ROLLBACK;
