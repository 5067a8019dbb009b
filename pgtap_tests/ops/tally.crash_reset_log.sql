-- tally.crash_reset_log: tally.crash_resets for a tally_reader login,
-- newest first, with the lost window (lost until - lost since) and cause.
BEGIN;
SELECT plan(7);

SET LOCAL timezone = 'UTC';

-- Shape
SELECT has_view('tally', 'crash_reset_log', 'view tally.crash_reset_log exists');
SELECT results_eq(
    $$SELECT a.attname::text COLLATE "default", format_type(a.atttypid, a.atttypmod)
      FROM pg_catalog.pg_attribute AS a
      WHERE a.attrelid = 'tally.crash_reset_log'::regclass AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum$$,
    $$VALUES ('id'::text, 'bigint'::text), ('detected_at', 'timestamp with time zone'),
             ('server_started_at', 'timestamp with time zone'), ('lost_since', 'timestamp with time zone'),
             ('lost_window', 'interval'), ('acknowledged_at', 'timestamp with time zone'),
             ('acknowledged_by', 'name'), ('node', 'text'), ('cause', 'text'),
             ('lost_until', 'timestamp with time zone')$$,
    'tally.crash_reset_log columns and types'
);

-- A fresh install has had no crash.
SELECT is_empty('SELECT FROM tally.crash_reset_log', 'a fresh install: no crash reset');

-- Two resets (what tally._detect_crash_reset records), newest first.
INSERT INTO tally.crash_resets (detected_at, server_started_at, lost_since, lost_until, cause) VALUES
('2026-11-01 10:00:05+00', '2026-11-01 10:00:00+00', NULL, '2026-11-01 10:00:00+00', 'crash'),
('2026-11-02 12:00:05+00', '2026-11-02 11:00:00+00', '2026-11-02 11:59:58.5+00', '2026-11-02 12:00:01+00',
 'promotion');
SELECT results_eq(
    'SELECT detected_at, server_started_at, lost_since, lost_window, cause, lost_until FROM tally.crash_reset_log',
    $$VALUES ('2026-11-02 12:00:05+00'::timestamptz, '2026-11-02 11:00:00+00'::timestamptz,
              '2026-11-02 11:59:58.5+00'::timestamptz, interval '2.5 seconds', 'promotion'::text,
              '2026-11-02 12:00:01+00'::timestamptz),
             ('2026-11-01 10:00:05+00', '2026-11-01 10:00:00+00', NULL, NULL, 'crash', '2026-11-01 10:00:00+00')$$,
    'newest first; the lost window is lost until - lost since (NULL: lost since install), and its cause'
);
SELECT results_eq(
    'SELECT id FROM tally.crash_reset_log',
    'SELECT id FROM tally.crash_resets ORDER BY id DESC',
    'one row per recorded reset, by id descending'
);

-- The reader sees it, and still not the table under it.
GRANT USAGE ON SCHEMA tap TO tally_reader;
SET LOCAL ROLE tally_reader;
SELECT is((SELECT count(*) FROM tally.crash_reset_log), 2::bigint, 'tally_reader reads tally.crash_reset_log');
SELECT throws_ok(
    'SELECT count(*) FROM tally.crash_resets', '42501', NULL, 'tally_reader still may not read tally.crash_resets'
);
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
