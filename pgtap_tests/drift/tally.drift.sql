-- tally.drift: one row per counter, by name: whether it has a source of
-- truth, and its latest drift check (tally.check_drift, recorded by
-- tally._record_drift): keys checked, internally inconsistent keys, keys off
-- the source (NULL without one) and the largest drift. NULLs before any check.
BEGIN;
SELECT plan(14);

SET LOCAL timezone = 'UTC';

-- Shape
SELECT has_view('tally', 'drift', 'view tally.drift exists');
SELECT columns_are(
    'tally', 'drift',
    ARRAY['counter', 'has_source', 'checked_at', 'keys_checked', 'inconsistent_keys', 'drifting_keys',
          'max_abs_drift'],
    'tally.drift has the expected columns'
);
SELECT results_eq(
    $$SELECT a.attname::text COLLATE "default", format_type(a.atttypid, a.atttypmod)
      FROM pg_catalog.pg_attribute AS a
      WHERE a.attrelid = 'tally.drift'::regclass AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum$$,
    $$VALUES ('counter'::text, 'text'::text), ('has_source', 'boolean'), ('checked_at', 'timestamp with time zone'),
             ('keys_checked', 'integer'), ('inconsistent_keys', 'integer'), ('drifting_keys', 'integer'),
             ('max_abs_drift', 'bigint')$$,
    'tally.drift column types'
);

-- Fresh install: no counter, no row.
SELECT is_empty('SELECT FROM tally.drift', 'a fresh install: tally.drift is empty (no counter)');

-- One row per counter, before any check.
SELECT tally.create_counter('dv_b');
SELECT tally.create_counter('dv_a');
SELECT results_eq(
    'SELECT * FROM tally.drift',
    $$VALUES ('dv_a'::text, false, NULL::timestamptz, NULL::integer, NULL::integer, NULL::integer, NULL::bigint),
             ('dv_b', false, NULL, NULL, NULL, NULL, NULL)$$,
    'one row per counter, by name; never checked: NULLs, no source'
);

-- A clean check without a source of truth
SELECT tally.increment_counter('dv_a', 'k', 3, now() - interval '1 hour');
SELECT tally.increment_counter('dv_a', 'j', 2, now() - interval '1 hour');
CREATE TEMP TABLE dv_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is_empty($$SELECT * FROM tally.check_drift('dv_a')$$, 'a consistent counter: check_drift finds nothing');
SELECT results_eq(
    $$SELECT * FROM tally.drift WHERE counter = 'dv_a'$$,
    $$VALUES ('dv_a'::text, false, now(), 2, 0, NULL::integer, NULL::bigint)$$,
    'the clean check: 2 keys checked, 0 inconsistent, drifting NULL (no source checked)'
);

-- Internal inconsistency found
UPDATE tally.rollup_day SET value = value + 7
WHERE counter_id = (SELECT id FROM tally.counters WHERE name = 'dv_a') AND key = 'k';
CREATE TEMP TABLE dv_found ON COMMIT DROP AS SELECT * FROM tally.check_drift('dv_a');
SELECT is((SELECT count(DISTINCT key) FROM dv_found), 1::bigint, 'check_drift finds the corrupted key');
SELECT results_eq(
    $$SELECT counter, keys_checked, inconsistent_keys, drifting_keys FROM tally.drift WHERE counter = 'dv_a'$$,
    $$VALUES ('dv_a'::text, 2, 1, NULL::integer)$$,
    'tally.drift shows the latest check: 1 inconsistent key (its 3 findings count once)'
);

-- A source of truth that disagrees
CREATE TABLE public.pgtap_follow (subject text NOT NULL, follower text NOT NULL);
INSERT INTO public.pgtap_follow VALUES ('k', 'x'), ('k', 'y'), ('k', 'z'), ('j', 'x');
SELECT tally.set_source('dv_b', 'SELECT count(*) FROM public.pgtap_follow WHERE subject = $1');
SELECT results_eq(
    $$SELECT counter, has_source, checked_at FROM tally.drift$$,
    $$VALUES ('dv_a'::text, false, now()), ('dv_b', true, NULL)$$,
    'has_source: true once a source is registered'
);
SELECT tally.increment_counter('dv_b', 'k', 3, now() - interval '1 hour');
SELECT tally.increment_counter('dv_b', 'j', 5, now() - interval '1 hour');
SELECT tally.increment_counter('dv_b', 'i', 1, now() - interval '1 hour');
CREATE TEMP TABLE dv_fold2 ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
CREATE TEMP TABLE dv_found2 ON COMMIT DROP AS SELECT * FROM tally.check_drift('dv_b');
SELECT results_eq(
    $$SELECT counter, keys_checked, inconsistent_keys, drifting_keys, max_abs_drift
      FROM tally.drift WHERE counter = 'dv_b'$$,
    $$VALUES ('dv_b'::text, 3, 0, 2, 4::bigint)$$,
    'with a source: 2 keys drifting (j: 5 for 1, i: 1 for 0), the largest drift 4'
);

-- Only the latest check counts.
SELECT tally.check_drift('dv_b', 100, '{k}');
SELECT results_eq(
    $$SELECT counter, keys_checked, inconsistent_keys, drifting_keys, max_abs_drift
      FROM tally.drift WHERE counter = 'dv_b'$$,
    $$VALUES ('dv_b'::text, 1, 0, 0, NULL::bigint)$$,
    'a later check (of key k only, which agrees) replaces it: 0 drifting, no max'
);
SELECT is(
    (SELECT count(*) FROM tally.drift_runs WHERE counter_id = (SELECT id FROM tally.counters WHERE name = 'dv_b')),
    2::bigint,
    'every run is kept in tally.drift_runs; the view shows the latest'
);

-- A dropped counter takes its checks and source along.
SELECT tally.drop_counter('dv_b');
SELECT results_eq('SELECT counter FROM tally.drift', $$VALUES ('dv_a'::text)$$, 'a dropped counter leaves tally.drift');

SELECT * FROM finish();
ROLLBACK;
