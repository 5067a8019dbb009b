-- tally.check_drift: a sample of a counter's keys (or the keys given) checked
-- for internal inconsistency (coarser buckets, and the total, that differ
-- from the sum of their finer buckets, within the retention windows) and,
-- with a registered source of truth, drift from it; findings returned and
-- recorded (tally.drift_checks, tally.drift_runs, tally.drift, tally.health);
-- refusals.
BEGIN;
SELECT plan(36);

SET LOCAL timezone = 'UTC';

CREATE TEMP TABLE cd_at ON COMMIT DROP AS SELECT now() - interval '1 hour' AS at;
SELECT tally.create_counter('cd');
SELECT tally.increment_counter('cd', 'k', 3, (SELECT at FROM cd_at));
SELECT tally.increment_counter('cd', 'k', 4, (SELECT at FROM cd_at));
SELECT tally.increment_counter('cd', 'j', 5, (SELECT at FROM cd_at));
CREATE TEMP TABLE cd_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
CREATE TEMP TABLE cd_id ON COMMIT DROP AS SELECT id FROM tally.counters WHERE name = 'cd';

-- Shape
SELECT function_returns(
    'tally', 'check_drift', ARRAY['text', 'integer', 'text[]'], 'setof record',
    'check_drift returns a set of (key, kind, detail, expected, actual) rows'
);

-- 1. A consistent counter
SELECT is_empty($$SELECT * FROM tally.check_drift('cd')$$, 'a consistent counter shows no finding');
SELECT results_eq(
    $$SELECT keys_checked, inconsistent_keys, drifting_keys, max_abs_drift FROM tally.drift_runs
      WHERE counter_id = (SELECT id FROM cd_id)$$,
    $$VALUES (2, 0, NULL::integer, NULL::bigint)$$,
    'the run is recorded: its 2 keys checked, none inconsistent, drifting NULL (no source)'
);
SELECT is_empty(
    'SELECT FROM tally.drift_checks WHERE counter_id = (SELECT id FROM cd_id)', 'a clean run records no finding'
);
SELECT is(
    (SELECT status FROM tally.health WHERE "check" = 'drift'), 'ok', 'tally.health: drift ok after a clean check'
);
SELECT is_empty(
    $$SELECT * FROM tally.check_drift('cd', 1)$$, 'a sample of 1 key is fine too'
);
SELECT is((SELECT keys_checked FROM tally.drift WHERE counter = 'cd'), 1, 'and checks 1 key');

-- 2. A hand-corrupted day bucket
UPDATE tally.rollup_day SET value = value + 7
WHERE counter_id = (SELECT id FROM cd_id) AND key = 'k' AND bucket = date_trunc('day', (SELECT at FROM cd_at), 'UTC');
SELECT results_eq(
    $$SELECT key, kind, detail, expected, actual FROM tally.check_drift('cd')$$,
    $$SELECT 'k'::text, 'internal'::text, d, e, a
      FROM cd_at, LATERAL (VALUES
          (1, format('day bucket %s: its hour buckets add up to 7, it holds 14', date_trunc('day', at, 'UTC')),
           7::bigint, 14::bigint),
          (2, format('week bucket %s: its day buckets add up to 14, it holds 7', date_trunc('week', at, 'UTC')),
           14, 7),
          (3, format('month bucket %s: its day buckets add up to 14, it holds 7', date_trunc('month', at, 'UTC')),
           14, 7)) AS v (n, d, e, a)
      ORDER BY n$$,
    'check_drift lists internal findings for k: the day against its hours, the week and month against their days'
);
SELECT results_eq(
    $$SELECT counter, keys_checked, inconsistent_keys, drifting_keys FROM tally.drift WHERE counter = 'cd'$$,
    $$VALUES ('cd'::text, 2, 1, NULL::integer)$$,
    'tally.drift: inconsistent_keys 1'
);
SELECT results_eq(
    $$SELECT status, reason FROM tally.health WHERE "check" = 'drift'$$,
    $$VALUES ('warn'::text, 'drift found in cd: see tally.drift, repair with tally.reconcile()'::text)$$,
    'tally.health: drift warn, naming the counter'
);
SELECT results_eq(
    $$SELECT key, kind, expected, actual, checked_at FROM tally.drift_checks
      WHERE counter_id = (SELECT id FROM cd_id) ORDER BY id$$,
    $$VALUES ('k'::text, 'internal'::text, 7::bigint, 14::bigint, now()), ('k', 'internal', 14, 7, now()),
             ('k', 'internal', 14, 7, now())$$,
    'the findings are recorded in tally.drift_checks'
);
SELECT is_empty($$SELECT * FROM tally.check_drift('cd', 100, '{j}')$$, 'the keys given: j alone is clean');
SELECT is((SELECT keys_checked FROM tally.drift WHERE counter = 'cd'), 1, 'and only the key given is checked');
SELECT is(
    (SELECT inconsistent_keys FROM tally.drift WHERE counter = 'cd'), 0,
    'the latest run (of j) is what tally.drift shows'
);
SELECT is(
    (SELECT count(*) FROM tally.check_drift('cd', 100, '{k,j}')), 3::bigint, 'the keys given: k and j, k''s 3 findings'
);
SELECT is_empty(
    $$SELECT * FROM tally.check_drift('cd', 100, '{never_counted}')$$,
    'a key never counted adds up (nothing anywhere)'
);
UPDATE tally.rollup_day SET value = value - 7
WHERE counter_id = (SELECT id FROM cd_id) AND key = 'k' AND bucket = date_trunc('day', (SELECT at FROM cd_at), 'UTC');

-- Other levels: an hour against its minutes, the total against the months.
UPDATE tally.rollup_hour SET value = value + 1
WHERE counter_id = (SELECT id FROM cd_id) AND key = 'j';
SELECT results_eq(
    $$SELECT key, expected, actual, detail FROM tally.check_drift('cd', 100, '{j}') ORDER BY detail$$,
    $$SELECT 'j'::text, e::bigint, a::bigint, d
      FROM cd_at, LATERAL (VALUES
          (6, 5, format('day bucket %s: its hour buckets add up to 6, it holds 5', date_trunc('day', at, 'UTC'))),
          (5, 6, format('hour bucket %s: its minute buckets add up to 5, it holds 6', date_trunc('hour', at, 'UTC'))))
          AS v (e, a, d)
      ORDER BY d$$,
    'a corrupted hour shows against its minutes and against its day'
);
UPDATE tally.rollup_hour SET value = value - 1 WHERE counter_id = (SELECT id FROM cd_id) AND key = 'j';
UPDATE tally.totals SET value = value + 2 WHERE counter_id = (SELECT id FROM cd_id) AND key = 'j';
SELECT results_eq(
    $$SELECT key, kind, detail, expected, actual FROM tally.check_drift('cd', 100, '{j}')$$,
    $$VALUES ('j'::text, 'internal'::text, 'all bucket (total): its month buckets add up to 5, it holds 7'::text,
              5::bigint, 7::bigint)$$,
    'a corrupted total shows against the months (kept forever)'
);
UPDATE tally.totals SET value = value - 2 WHERE counter_id = (SELECT id FROM cd_id) AND key = 'j';
SELECT is_empty($$SELECT * FROM tally.check_drift('cd')$$, 'repaired by hand: clean again');

-- 3. Retention: buckets outside the finer granularity's retention are not compared.
SELECT tally.increment_counter('cd', 'old', 4, now() - interval '8 days');
CREATE TEMP TABLE cd_fold2 ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is_empty(
    $$SELECT FROM tally.rollup_minute WHERE counter_id = (SELECT id FROM cd_id) AND key = 'old'$$,
    'precondition: an increment 8 days old has no minute bucket (minutes are kept 7 days)'
);
SELECT is_empty(
    $$SELECT * FROM tally.check_drift('cd', 100, '{old}')$$,
    'its hour is past the minutes'' retention: not compared with them'
);
SELECT tally.set_retention(NULL, 'minute', NULL);
SELECT tally.increment_counter('cd', 'older', 6, now() - interval '9 days');
CREATE TEMP TABLE cd_fold3 ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
UPDATE tally.rollup_hour SET value = value + 1 WHERE counter_id = (SELECT id FROM cd_id) AND key = 'older';
SELECT is(
    (SELECT count(*) FROM tally.check_drift('cd', 100, '{older}') WHERE detail LIKE 'hour bucket %'),
    0::bigint,
    'minutes kept forever only since now: a 9-day-old hour is not compared with them (tally.coverage)'
);

SELECT tally.set_retention('cd', 'day', '30 days');
SELECT tally.increment_counter('cd', 'backfill', 5, now() - interval '40 days');
CREATE TEMP TABLE cd_fold4 ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is_empty(
    $$SELECT * FROM tally.check_drift('cd', 100, '{backfill}')$$,
    'a day past the day retention (30 days) but within the hours'' (90 days) is not reported missing'
);

-- 4. A registered source of truth that disagrees
CREATE TABLE public.pgtap_follow (subject text NOT NULL, follower text NOT NULL);
INSERT INTO public.pgtap_follow VALUES ('k', 'x'), ('k', 'y'), ('k', 'z'), ('k', 'w'), ('k', 'v'), ('k', 'u'),
                                       ('k', 't'), ('j', 'x');
SELECT tally.set_source('cd', 'SELECT count(*) FROM public.pgtap_follow WHERE subject = $1');
SELECT results_eq(
    $$SELECT key, kind, detail, expected, actual FROM tally.check_drift('cd', 100, '{k,j}')$$,
    $$VALUES ('j'::text, 'source'::text, 'the source of truth says 1, the counter 5'::text, 1::bigint, 5::bigint)$$,
    'a source that disagrees: a source finding with expected (the truth) and actual (the counter)'
);
SELECT results_eq(
    $$SELECT has_source, keys_checked, inconsistent_keys, drifting_keys, max_abs_drift FROM tally.drift
      WHERE counter = 'cd'$$,
    $$VALUES (true, 2, 0, 1, 4::bigint)$$,
    'tally.drift: 1 key drifting, by 4'
);
SELECT tally.increment_counter('cd', 'j', -4);
SELECT is_empty(
    $$SELECT * FROM tally.check_drift('cd', 100, '{k,j}')$$,
    'pending increments count: the counter agrees with the source before any fold'
);

-- 5. Refusals
SELECT throws_ok(
    $$SELECT * FROM tally.check_drift('cd', 0)$$, '22023', 'tally.check_drift: sample size 0 is out of range',
    'a sample of 0 keys is refused with invalid_parameter_value'
);
SELECT throws_ok(
    $$SELECT * FROM tally.check_drift('cd', NULL)$$, '22023', NULL, 'a NULL sample without keys is refused'
);
SELECT throws_ok(
    $$SELECT * FROM tally.check_drift('cd', 100001)$$, '22023', NULL, 'a sample over 100000 keys is refused'
);
SELECT throws_ok(
    $$SELECT * FROM tally.check_drift('cd_nope')$$, '42704', 'tally.check_drift: unknown counter "cd_nope"',
    'an unknown counter is refused with undefined_object'
);
SELECT throws_ok(
    $$SELECT * FROM tally.check_drift(NULL)$$, '22004', NULL, 'a NULL counter name is refused'
);
SELECT tally.create_counter('cd_nosource');
SELECT throws_ok(
    $$SELECT * FROM tally.check_drift('cd_nosource', 100, ARRAY['k', NULL])$$, '22004', NULL,
    'a NULL key given is refused with null_value_not_allowed, as reconcile does'
);
SELECT throws_ok(
    $$SELECT * FROM tally.check_drift('cd_nosource', 100, ARRAY[''])$$, '22004', NULL, 'an empty key given is refused'
);
-- 6. The source runs with its registrant's privileges, whoever checks: a
-- role that may read a table tally's callers may not registers a source on
-- it; the check, run by another role, gets the registrant's answer.
CREATE ROLE pgtap_cd_src NOLOGIN;
GRANT tally_admin TO pgtap_cd_src;
CREATE TABLE public.pgtap_cd_secret (subject text NOT NULL);
INSERT INTO public.pgtap_cd_secret VALUES ('k'), ('k');
REVOKE ALL ON public.pgtap_cd_secret FROM PUBLIC;
GRANT SELECT ON public.pgtap_cd_secret TO pgtap_cd_src;
SET SESSION AUTHORIZATION pgtap_cd_src;
SELECT tally.set_source(
    'cd', 'SELECT count(*) FROM public.pgtap_cd_secret WHERE subject = $1 AND current_user = ''pgtap_cd_src''',
    'public'
);
RESET SESSION AUTHORIZATION;
SELECT is(
    (SELECT p.proowner::regrole::text FROM pg_catalog.pg_proc AS p
     WHERE p.oid = format('tally.source_%s(text)', (SELECT id FROM cd_id))::regprocedure),
    'pgtap_cd_src',
    'the source runs in a SECURITY DEFINER function owned by its registrant'
);
CREATE ROLE pgtap_cd_other NOLOGIN;
GRANT tally_admin TO pgtap_cd_other;
GRANT USAGE ON SCHEMA tap TO pgtap_cd_other;
GRANT SELECT ON cd_id TO pgtap_cd_other;
SET ROLE pgtap_cd_other;
SELECT results_eq(
    $$SELECT key, kind, expected, actual FROM tally.check_drift('cd', 100, '{k}')$$,
    $$VALUES ('k'::text, 'source'::text, 2::bigint, 7::bigint)$$,
    'another admin''s check gets the registrant''s answer (2, which only that role can read)'
);
SELECT throws_ok(
    format('SELECT tally.source_%s(''k'')', (SELECT id FROM cd_id)), '42501', NULL,
    'nobody else can call the source function'
);
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
