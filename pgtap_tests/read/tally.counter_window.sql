-- tally.counter_window: the total over [p_from, p_to) equals the sum of the
-- increments in it (a ground truth kept here) for windows cut into every
-- granularity, pending, folded and both; in a DST zone (a 25-hour day);
-- bounds checked against what the counter keeps at that age (retention);
-- refusals.
BEGIN;
SELECT plan(33);

-- Whatever the session's zone, windows are instants.
SET LOCAL timezone = 'Asia/Kolkata';
-- Keep every bucket for the fixed-date part (rolled back with the test).
SELECT tally.set_retention(NULL, 'minute', NULL);
SELECT tally.set_retention(NULL, 'hour', NULL);

SELECT tally.create_counter('cw_c');
SELECT tally.create_counter('cw_ny', p_time_zone => 'America/New_York');
SELECT tally.create_counter('cw_days', '{day,month}');
SELECT tally.create_counter('cw_total', '{}');

-- The ground truth: an increment every 37 minutes from 2026-09-20 for 60
-- days (over the end of DST in New York, 2026-11-01), values 1 .. 7, and a
-- second key.
CREATE TEMP TABLE cw_truth ON COMMIT DROP AS
SELECT '2026-09-20 00:00:00+00'::timestamptz + i * interval '37 minutes' + (i % 60) * interval '1 second' AS at,
       (i % 7 + 1)::bigint AS delta
FROM generate_series(0, 60 * 24 * 60 / 37) AS i;
SELECT tally.increment_counters(
    array_fill('cw_c'::text, ARRAY[n]) || array_fill('cw_ny'::text, ARRAY[n]) || array_fill('cw_days'::text, ARRAY[n]),
    array_fill('k'::text, ARRAY[3 * n]),
    d || d || d, a || a || a)
FROM (SELECT count(*)::integer AS n, array_agg(delta ORDER BY at) AS d, array_agg(at ORDER BY at) AS a FROM cw_truth) AS t;
SELECT tally.increment_counter('cw_c', 'other', 1000, '2026-10-10 12:00+00');

-- (days: on UTC day boundaries, for the counter keeping days and months)
CREATE TEMP TABLE cw_windows (w_from timestamptz, w_to timestamptz, what text, days boolean) ON COMMIT DROP;
INSERT INTO cw_windows VALUES
    ('2026-10-01 00:00+00', '2026-10-08 00:00+00', 'a week of whole days', true),
    ('2026-09-20 00:00+00', '2026-11-19 00:00+00', 'the whole history', true),
    ('2026-09-22 13:17+00', '2026-11-03 04:41+00', 'months, weeks, days, hours and minutes at both edges', false),
    ('2026-10-05 10:00+00', '2026-10-05 11:00+00', 'one hour', false),
    ('2026-10-05 10:03+00', '2026-10-05 10:04+00', 'one minute', false),
    ('2026-10-05 10:03+00', '2026-10-05 10:03+00', 'an empty window', true),
    ('2025-01-01 00:00+00', '2025-02-01 00:00+00', 'a window before any increment', true);

-- Every window of a query (counter, w_from, w_to) against the sum of a
-- ground truth query (counter, at, delta) over it; one test.
CREATE FUNCTION pg_temp.cw_match(p_label text, p_windows text, p_truth text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    w record;
    v_truth numeric;
    v_bad text := '';
BEGIN
    FOR w IN EXECUTE p_windows LOOP
        EXECUTE format('SELECT coalesce(sum(t.delta), 0) FROM (%s) AS t'
                       ' WHERE t.counter = $1 AND t.at >= $2 AND t.at < $3', p_truth)
        INTO v_truth USING w.counter, w.w_from, w.w_to;
        IF tally.counter_window(w.counter, 'k', w.w_from, w.w_to) IS DISTINCT FROM v_truth THEN
            v_bad := v_bad || format('%s [%s, %s); ', w.counter, w.w_from, w.w_to);
        END IF;
    END LOOP;
    RETURN NEXT is(v_bad, '', p_label);
END;
$$;
CREATE FUNCTION pg_temp.cw_check(p_counter text, p_label text, p_days boolean DEFAULT false)
RETURNS SETOF text LANGUAGE sql AS $$
    SELECT pg_temp.cw_match(
        p_label,
        format('SELECT %L::text AS counter, w_from, w_to FROM cw_windows WHERE days OR NOT %L', p_counter, p_days),
        format('SELECT %L::text AS counter, at, delta FROM cw_truth', p_counter))
$$;

SELECT pg_temp.cw_check('cw_c', 'pending only: every window equals the ground truth');
SELECT pg_temp.cw_check('cw_ny', 'pending only, New York: every window equals the ground truth');
SELECT is(tally.counter_window('cw_c', 'other', '2026-10-10 00:00+00', '2026-10-11 00:00+00'), 1000::bigint,
          'each key has its own window');

CREATE TEMP TABLE cw_fold1 ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT pg_temp.cw_check('cw_c', 'folded: every window equals the ground truth');
SELECT pg_temp.cw_check('cw_ny', 'folded, New York: every window equals the ground truth');

-- Folded and pending at once: more increments inside the windows.
INSERT INTO cw_truth VALUES ('2026-10-03 05:05:05+00', 40), ('2026-11-02 23:59:59+00', -3), ('2026-10-05 10:03:30+00', 9);
SELECT tally.increment_counters('{cw_c,cw_c,cw_c,cw_ny,cw_ny,cw_ny,cw_days,cw_days,cw_days}', '{k,k,k,k,k,k,k,k,k}',
    '{40,-3,9,40,-3,9,40,-3,9}',
    '{2026-10-03 05:05:05+00,2026-11-02 23:59:59+00,2026-10-05 10:03:30+00,'
    '2026-10-03 05:05:05+00,2026-11-02 23:59:59+00,2026-10-05 10:03:30+00,'
    '2026-10-03 05:05:05+00,2026-11-02 23:59:59+00,2026-10-05 10:03:30+00}');
SELECT pg_temp.cw_check('cw_c', 'folded plus pending: every window equals the ground truth');
SELECT pg_temp.cw_check('cw_ny', 'folded plus pending, New York: every window equals the ground truth');

-- New York's day of 2026-11-01 has 25 hours: from 04:00 UTC to 05:00 UTC
-- the next day; its hours are local hours.
SELECT is(tally.counter_window('cw_ny', 'k', '2026-11-01 04:00+00', '2026-11-02 05:00+00'),
          (SELECT sum(delta)::bigint FROM cw_truth WHERE at >= '2026-11-01 04:00+00' AND at < '2026-11-02 05:00+00'),
          'New York: the 25-hour day of 2026-11-01 (a local day bucket)');
SELECT throws_ok($$SELECT tally.counter_window('cw_ny', 'k', '2026-11-01 04:00+00', '2026-11-02 04:00:30+00')$$,
    '22023',
    'tally.counter_window: p_to 2026-11-02 09:30:30+05:30 is not on a boundary of the minute buckets counter "cw_ny" '
    'keeps for that time (time zone America/New_York)',
    'a bound off every boundary is refused naming it in the session''s zone ...');
SELECT throws_ok($$SELECT tally.counter_window('cw_days', 'k', '2026-10-01 00:00+00', '2026-10-02 05:00+00')$$,
    '22023',
    'tally.counter_window: p_to 2026-10-02 10:30:00+05:30 is not on a boundary of the day buckets counter "cw_days" '
    'keeps for that time (time zone UTC)',
    '... at the granularity the counter keeps (days only)');
SELECT is(tally.counter_window('cw_days', 'k', '2026-10-01 00:00+00', '2026-11-05 00:00+00'),
          (SELECT sum(delta)::bigint FROM cw_truth WHERE at >= '2026-10-01 00:00+00' AND at < '2026-11-05 00:00+00'),
          'a counter keeping days and months: a month plus days');
SELECT pg_temp.cw_check('cw_days', 'a counter keeping days and months: every day-aligned window', true);

-- Whatever the session's DateStyle: the bucket bounds are not read back
-- from the session's text of a time ('IST' would be read as Israel's).
SET LOCAL datestyle = 'Postgres, MDY';
SELECT pg_temp.cw_check('cw_c', 'DateStyle Postgres, session zone Asia/Kolkata: every window equals the ground truth');
SET LOCAL datestyle = 'ISO, MDY';

-- Weeks and months do not nest: a window from Monday to Monday over two
-- months of a counter keeping weeks and months is read in weeks.
SELECT tally.create_counter('cw_wm', '{week,month}');
SELECT tally.increment_counters(array_fill('cw_wm'::text, ARRAY[n]), array_fill('k'::text, ARRAY[n]), d, a)
FROM (SELECT count(*)::integer AS n, array_agg(delta ORDER BY at) AS d, array_agg(at ORDER BY at) AS a FROM cw_truth) AS t;
CREATE TEMP TABLE cw_fold3 ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT is(tally.counter_window('cw_wm', 'k', '2026-09-28 00:00+00', '2026-11-09 00:00+00'),
          (SELECT sum(delta)::bigint FROM cw_truth WHERE at >= '2026-09-28 00:00+00' AND at < '2026-11-09 00:00+00'),
          'weeks and months: Monday to Monday over parts of three months, in weeks');
SELECT is(tally.counter_window('cw_wm', 'k', '2026-10-01 00:00+00', '2026-11-01 00:00+00'),
          (SELECT sum(delta)::bigint FROM cw_truth WHERE at >= '2026-10-01 00:00+00' AND at < '2026-11-01 00:00+00'),
          'weeks and months: a month');

-- Zones whose clock repeats or skips at a bucket's start: the buckets are
-- read only between exact starts, finer ones elsewhere. Lord Howe moves its
-- clock by half an hour (2026-04-05 02:00 back to 01:30, 2026-10-04 02:00
-- on to 02:30); Havana repeats midnight (2026-11-01 01:00 back to 00:00).
SELECT tally.create_counter('cw_lh', p_time_zone => 'Australia/Lord_Howe');
SELECT tally.create_counter('cw_hav', p_time_zone => 'America/Havana');
CREATE TEMP TABLE cw_ztruth (counter text, at timestamptz, delta bigint) ON COMMIT DROP;
INSERT INTO cw_ztruth VALUES
    ('cw_lh', '2026-04-04 14:10+00', 1), ('cw_lh', '2026-04-04 14:40+00', 10), ('cw_lh', '2026-04-04 15:10+00', 100),
    ('cw_lh', '2026-10-03 14:40+00', 1000), ('cw_lh', '2026-10-03 15:10+00', 10000),
    ('cw_lh', '2026-10-03 15:40+00', 100000),
    ('cw_hav', '2026-10-31 12:00+00', 1), ('cw_hav', '2026-11-01 04:30+00', 10), ('cw_hav', '2026-11-01 12:00+00', 100);
SELECT tally.increment_counters(array_agg(counter), array_fill('k'::text, ARRAY[count(*)::integer]), array_agg(delta),
                                array_agg(at))
FROM cw_ztruth;
CREATE TEMP TABLE cw_zwindows (counter text, w_from timestamptz, w_to timestamptz) ON COMMIT DROP;
INSERT INTO cw_zwindows VALUES
    ('cw_lh', '2026-04-04 14:00+00', '2026-04-04 15:00+00'), ('cw_lh', '2026-04-04 13:00+00', '2026-04-04 15:00+00'),
    ('cw_lh', '2026-04-04 14:00+00', '2026-04-04 16:00+00'), ('cw_lh', '2026-04-01 13:00+00', '2026-04-08 13:00+00'),
    ('cw_lh', '2026-10-03 14:30+00', '2026-10-03 15:30+00'), ('cw_lh', '2026-10-03 15:00+00', '2026-10-03 16:00+00'),
    ('cw_lh', '2026-09-01 00:00+00', '2026-11-01 00:00+00'),
    ('cw_hav', '2026-10-01 04:00+00', '2026-11-01 04:00+00'), ('cw_hav', '2026-11-01 04:00+00', '2026-11-02 05:00+00'),
    ('cw_hav', '2026-10-01 04:00+00', '2026-12-01 05:00+00'),
    ('cw_hav', '2026-10-01 00:00 America/Havana', '2026-11-01 00:00 America/Havana');
SELECT pg_temp.cw_match('Lord Howe and Havana, pending: every window equals the ground truth',
    'SELECT counter, w_from, w_to FROM cw_zwindows', 'SELECT counter, at, delta FROM cw_ztruth');
CREATE TEMP TABLE cw_fold4 ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT pg_temp.cw_match('Lord Howe and Havana, folded: every window equals the ground truth',
    'SELECT counter, w_from, w_to FROM cw_zwindows', 'SELECT counter, at, delta FROM cw_ztruth');

-- Retention: each granularity only where the counter keeps it. cw_ret
-- keeps minutes for a day and hours for 3 days (days and coarser forever).
SELECT tally.create_counter('cw_ret');
SELECT tally.set_retention('cw_ret', 'minute', '1 day');
SELECT tally.set_retention('cw_ret', 'hour', '3 days');
SELECT tally.create_counter('cw_min', '{minute}');
SELECT tally.set_retention('cw_min', 'minute', '1 day');
CREATE TEMP TABLE cw_rtruth ON COMMIT DROP AS
SELECT now() - i * interval '53 minutes' AS at, (i % 5 + 1)::bigint AS delta FROM generate_series(0, 200) AS i;
SELECT tally.increment_counters(array_fill('cw_ret'::text, ARRAY[n]), array_fill('k'::text, ARRAY[n]), d, a)
FROM (SELECT count(*)::integer AS n, array_agg(delta) AS d, array_agg(at) AS a FROM cw_rtruth) AS t;

CREATE TEMP TABLE cw_rwindows ON COMMIT DROP AS
SELECT * FROM (VALUES
    (date_trunc('minute', now() - interval '2 hours'), date_trunc('minute', now()) + interval '1 minute',
     'the last two hours, in minutes'),
    (date_trunc('hour', now() - interval '2 days', 'UTC'), date_trunc('minute', now()) + interval '1 minute',
     'from an hour 2 days ago (minutes are not kept then) to the next minute'),
    (date_trunc('day', now() - interval '6 days', 'UTC'), date_trunc('hour', now() - interval '1 day', 'UTC'),
     'from a day 6 days ago (hours are not kept then) to an hour a day ago')
) AS w (w_from, w_to, what);
SELECT pg_temp.cw_match('retention, pending: windows on the boundaries kept at each age equal the ground truth',
    'SELECT ''cw_ret''::text AS counter, w_from, w_to FROM cw_rwindows',
    'SELECT ''cw_ret''::text AS counter, at, delta FROM cw_rtruth');
CREATE TEMP TABLE cw_fold2 ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
SELECT pg_temp.cw_match('retention, folded: the same windows equal the ground truth',
    'SELECT ''cw_ret''::text AS counter, w_from, w_to FROM cw_rwindows',
    'SELECT ''cw_ret''::text AS counter, at, delta FROM cw_rtruth');
SELECT throws_like(
    format('SELECT tally.counter_window(%L, %L, %L, now())', 'cw_ret', 'k',
           date_trunc('hour', now() - interval '2 days', 'UTC') + interval '7 minutes'),
    'tally.counter_window: p_from % is not on a boundary of the hour buckets counter "cw_ret" keeps for that time%',
    'a minute boundary 2 days ago is refused: only hours are kept for that time');
SELECT throws_like(
    format('SELECT tally.counter_window(%L, %L, %L, now())', 'cw_ret', 'k',
           date_trunc('day', now() - interval '5 days', 'UTC') + interval '1 hour'),
    'tally.counter_window: p_from % is not on a boundary of the day buckets counter "cw_ret" keeps for that time%',
    'an hour boundary 5 days ago is refused: only days are kept for that time');
SELECT throws_like(
    format('SELECT tally.counter_window(%L, %L, %L, %L)', 'cw_min', 'k',
           date_trunc('minute', now() - interval '3 days'), date_trunc('minute', now())),
    'tally.counter_window: p_from % is older than any bucket counter "cw_min" keeps',
    'a bound older than every bucket kept is refused');

-- Refusals
SELECT throws_ok($$SELECT tally.counter_window('cw_nope', 'k', now(), now())$$, '42704',
    'tally.counter_window: unknown counter "cw_nope"', 'an unknown counter is refused');
SELECT throws_ok($$SELECT tally.counter_window(NULL, 'k', now(), now())$$, '22004', NULL, 'a NULL counter is refused');
SELECT throws_ok($$SELECT tally.counter_window('cw_c', NULL, now(), now())$$, '22004',
    'tally.counter_window: key must not be NULL or empty', 'a NULL key is refused');
SELECT throws_ok($$SELECT tally.counter_window('cw_c', repeat('x', 513), now(), now())$$, '22001', NULL,
    'an oversized key is refused');
SELECT throws_ok($$SELECT tally.counter_window('cw_c', 'k', NULL, now())$$, '22004', NULL, 'a NULL bound is refused');
SELECT throws_ok($$SELECT tally.counter_window('cw_c', 'k', '2026-10-02', '2026-10-01')$$, '22023', NULL,
    'an inverted window is refused');
SELECT throws_ok($$SELECT tally.counter_window('cw_c', 'k', '-infinity', '2026-10-01')$$, '22023',
    'tally.counter_window: the window [-infinity, 2026-10-01 00:00:00+05:30) is not finite',
    'an infinite bound is refused');
SELECT throws_ok($$SELECT tally.counter_window('cw_total', 'k', '2026-10-01', '2026-10-02')$$, '22023',
    'tally.counter_window: counter "cw_total" keeps no buckets, only the all-time total',
    'a counter keeping no buckets is refused');
SELECT is(tally.counter_window('cw_total', 'k', '2026-10-01', '2026-10-01'), 0::bigint,
          'an empty window of any counter is 0');

-- Privileges: the readers' function.
SELECT ok(has_function_privilege('tally_reader', 'tally.counter_window(text, text, timestamptz, timestamptz)', 'EXECUTE'),
          'tally_reader may call it');
SELECT ok(NOT has_function_privilege('public', 'tally.counter_window(text, text, timestamptz, timestamptz)', 'EXECUTE'),
          'PUBLIC may not');

SELECT * FROM finish();
ROLLBACK;
