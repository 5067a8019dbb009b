-- tally.health: one row per check (node, compactor, lag, backlog, folds,
-- maintenance, drift, crash, quarantine), status ok / warn / critical and a reason. All
-- 'ok' on a fresh install but the compactor (never run);
-- lag warns at 10 s and is critical at 60 s of the oldest pending increment;
-- the compactor the same on the time since the last generation flip while
-- deltas are pending; folds critical with a fold abandoned in the last hour;
-- drift warn when the latest check of a counter found something; crash
-- critical when the UNLOGGED marker is gone and for 24 h after a reset,
-- until acknowledged; compactor 'never run' right after install;
-- maintenance critical when today's or tomorrow's event-id partition is
-- missing and warn when the last maintenance failed in part or is overdue
-- while a compactor runs; backlog warns when the compactor's samples show the
-- backlog growing for minutes, with the rates. (A hot standby: python_client/tests/test_replica.py.)
BEGIN;
SELECT plan(62);

CREATE TEMP VIEW h AS SELECT "check", status, reason FROM tally.health;

-- Shape
SELECT has_view('tally', 'health', 'view tally.health exists');
SELECT columns_are('tally', 'health', ARRAY['check', 'status', 'reason'], 'tally.health has columns check, status, reason');
SELECT col_type_is('tally', 'health', 'check', 'text', 'health.check is text');
SELECT col_type_is('tally', 'health', 'status', 'text', 'health.status is text');
SELECT col_type_is('tally', 'health', 'reason', 'text', 'health.reason is text');

-- Fresh install: everything ok. (A crash of the cluster since the install
-- empties the UNLOGGED marker: then 'crash' is rightly critical; run the
-- suite against a freshly created database.)
SELECT is(
    (SELECT count(*) FROM tally.crash_marker), 1::bigint,
    'precondition: tally.crash_marker holds its row (no crash of the cluster since the install)'
);
SELECT results_eq(
    'SELECT "check", status FROM h ORDER BY 1',
    $$VALUES ('backlog'::text, 'ok'::text), ('compactor', 'warn'), ('crash', 'ok'), ('drift', 'ok'), ('folds', 'ok'),
             ('lag', 'ok'), ('maintenance', 'ok'), ('node', 'ok'), ('quarantine', 'ok')$$,
    'a fresh install has exactly the 9 checks; all ok but the compactor, which never ran (warn)'
);
SELECT results_eq(
    'SELECT "check", reason FROM h ORDER BY 1',
    $$VALUES ('backlog'::text, 'no backlog sample in the last 5 minutes (the compactor takes them)'::text),
             ('compactor', 'never run: no compactor step since install (0 pending); schedule it with '
                           'tally.schedule_compactor() or run `tally compact --loop`'),
             ('crash', 'no crash reset in the last 24 hours'),
             ('drift', 'no drift in the latest checks'),
             ('folds', 'no fold abandoned in the last hour'),
             ('lag', 'oldest pending increment: 0.0 s (0 pending)'),
             ('maintenance', format('not run yet; due by %s (a compactor loop runs it at its start, then hourly)',
                                    (SELECT installed_at + interval '1 hour' FROM tally.install_baseline))),
             ('node', format('primary, %s streaming standbys', (SELECT count(*) FROM pg_stat_replication))),
             ('quarantine', 'nothing quarantined')$$,
    'and says why'
);

-- lag: the age of the oldest pending increment (written_at).
SELECT tally.create_counter('h_c');
SELECT tally.increment_counter('h_c', 'k', 1, now() - interval '1 hour');
SELECT is((SELECT status FROM h WHERE "check" = 'lag'), 'ok', 'lag: a delta written just now is ok');
UPDATE tally.delta SET written_at = now() - interval '9.9 seconds';
SELECT is((SELECT status FROM h WHERE "check" = 'lag'), 'ok', 'lag: 9.9 s is ok');
UPDATE tally.delta SET written_at = now() - interval '10 seconds';
SELECT is((SELECT status FROM h WHERE "check" = 'lag'), 'warn', 'lag: 10 s is warn');
UPDATE tally.delta SET written_at = now() - interval '30 seconds';
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'lag'$$,
    $$VALUES ('warn'::text, 'oldest pending increment: 30.0 s (1 pending)'::text)$$,
    'lag: a pending delta written 30 s ago is warn, with its age and the pending count'
);
UPDATE tally.delta SET written_at = now() - interval '60 seconds';
SELECT is((SELECT status FROM h WHERE "check" = 'lag'), 'critical', 'lag: 60 s is critical');
SELECT tally.increment_counter('h_c', 'k2');
UPDATE tally.delta SET written_at = now() - interval '90 seconds' WHERE key = 'k';
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'lag'$$,
    $$VALUES ('critical'::text, 'oldest pending increment: 90.0 s (2 pending)'::text)$$,
    'lag: 90 s is critical; the oldest delta counts, not the newest'
);

-- compactor: never run, with deltas pending: warn, then critical once the
-- oldest has waited 60 s (here 90 s).
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'compactor'$$,
    $$VALUES ('critical'::text, 'never run: no compactor step since install (2 pending); schedule it with '
                                'tally.schedule_compactor() or run `tally compact --loop`'::text)$$,
    'compactor: never run while a delta waits 90 s is critical, and says it never ran'
);
UPDATE tally.delta SET written_at = now() - interval '59 seconds' WHERE key = 'k';
SELECT is((SELECT status FROM h WHERE "check" = 'compactor'), 'warn', 'compactor: never run, oldest delta 59 s: warn');
UPDATE tally.delta SET written_at = now() - interval '90 seconds' WHERE key = 'k';

-- compactor: time since the last generation flip, while deltas are pending.
UPDATE tally.write_gen SET flips = 1, flipped_at = now() - interval '5 seconds';
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'compactor'$$,
    $$VALUES ('ok'::text, 'running: last step 5.0 s ago'::text)$$,
    'compactor: a flip 5 s ago with deltas pending is ok (running)'
);
UPDATE tally.write_gen SET flipped_at = now() - interval '10 seconds';
SELECT is((SELECT status FROM h WHERE "check" = 'compactor'), 'warn', 'compactor: no flip for 10 s with deltas pending is warn');
UPDATE tally.write_gen SET flipped_at = now() - interval '30 seconds';
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'compactor'$$,
    $$VALUES ('warn'::text, 'not running: no compactor step for 30 s, the oldest of 2 pending deltas waits 90 s'::text)$$,
    'compactor: no flip for 30 s with deltas pending is warn'
);
UPDATE tally.write_gen SET flipped_at = now() - interval '60 seconds';
SELECT is((SELECT status FROM h WHERE "check" = 'compactor'), 'critical', 'compactor: 60 s is critical');
UPDATE tally.write_gen SET flipped_at = now() - interval '90 seconds';
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'compactor'$$,
    $$VALUES ('critical'::text, 'not running: no compactor step for 90 s, the oldest of 2 pending deltas waits 90 s'::text)$$,
    'compactor: no flip for 90 s with deltas pending is critical'
);

-- A compactor that has not stepped for long is not late for a delta written
-- a moment ago (an idle database): ok until that delta has waited 10 s.
UPDATE tally.delta SET written_at = now() - interval '2 seconds';
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'compactor'$$,
    $$VALUES ('ok'::text, 'last step 90 s ago; the oldest pending delta is 2.0 s old'::text)$$,
    'compactor: no flip for 90 s but the oldest pending delta 2 s old is ok'
);
UPDATE tally.delta SET written_at = now() - interval '20 seconds';
SELECT is((SELECT status FROM h WHERE "check" = 'compactor'), 'warn',
          'compactor: no flip for 90 s and a delta waiting 20 s is warn');

-- After a fold nothing is pending: compactor and lag are ok again, however
-- old the last flip.
CREATE TEMP TABLE h_fold ON COMMIT DROP AS SELECT tally._fold(100000) AS n;
UPDATE tally.write_gen SET flipped_at = now() - interval '1 hour';
SELECT results_eq(
    $$SELECT "check", status, reason FROM h WHERE "check" IN ('compactor', 'lag') ORDER BY 1$$,
    $$VALUES ('compactor'::text, 'ok'::text, 'nothing pending'::text),
             ('lag', 'ok', 'oldest pending increment: 0.0 s (0 pending)')$$,
    'with nothing pending, compactor and lag are ok even with the last flip an hour ago'
);

-- folds: a fold abandoned (outcome failed) in the last hour is critical.
INSERT INTO tally.fold_runs (started_at, finished_at, outcome, error)
VALUES (now() - interval '2 hours', now() - interval '61 minutes', 'failed', '40P01: deadlock detected');
SELECT is((SELECT status FROM h WHERE "check" = 'folds'), 'ok', 'folds: a fold abandoned over an hour ago is ok');
SELECT tally._record_fold(now(), 0, 2, 'retried', '40P01: deadlock detected');
SELECT is((SELECT status FROM h WHERE "check" = 'folds'), 'ok', 'folds: a retried attempt is ok');
SELECT tally._record_fold(now(), 0, 5, 'failed', '40P01: deadlock detected');
SELECT is((SELECT status FROM h WHERE "check" = 'folds'), 'critical', 'folds: a fold abandoned in the last hour is critical');
SELECT matches(
    (SELECT reason FROM h WHERE "check" = 'folds'),
    '^1 folds abandoned after retries in the last hour, last at .*: see tally\.compactor_runs$',
    'folds: the reason counts the abandoned folds of the last hour and points to tally.compactor_runs'
);
INSERT INTO tally.fold_runs (started_at, finished_at, outcome) VALUES (now() - interval '1 minute', now(), 'failed');
SELECT matches(
    (SELECT reason FROM h WHERE "check" = 'folds'), '^2 folds abandoned', 'folds: each abandoned fold counts'
);

-- drift: the latest drift run of each counter.
SELECT tally._record_drift(
    (SELECT id FROM tally.counters WHERE name = 'h_c'), 1,
    '[{"key": "k", "kind": "internal", "detail": "x", "expected": 1, "actual": 2}]', false
);
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'drift'$$,
    $$VALUES ('warn'::text, 'drift found in h_c: see tally.drift, repair with tally.reconcile()'::text)$$,
    'drift: an inconsistent key in the latest check is warn, naming the counter'
);
SELECT tally.create_counter('h_b');
SELECT tally._record_drift(
    (SELECT id FROM tally.counters WHERE name = 'h_b'), 1,
    '[{"key": "k", "kind": "source", "detail": "x", "expected": 1, "actual": 2}]', true
);
SELECT is(
    (SELECT reason FROM h WHERE "check" = 'drift'),
    'drift found in h_b, h_c: see tally.drift, repair with tally.reconcile()',
    'drift: a key off its source of truth is drift too; the counters are listed by name'
);
SELECT tally._record_drift((SELECT id FROM tally.counters WHERE name = 'h_c'), 1, '[]', false);
SELECT tally._record_drift((SELECT id FROM tally.counters WHERE name = 'h_b'), 1, '[]', true);
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'drift'$$,
    $$VALUES ('ok'::text, 'no drift in the latest checks'::text)$$,
    'drift: only the latest check of each counter counts: clean checks make it ok again'
);

-- crash: the UNLOGGED one-row marker vanishes with a crash reset.
DELETE FROM tally.crash_marker;
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'crash'$$,
    $$VALUES ('critical'::text,
              'a crash reset (or a promotion) emptied the fast (unlogged) deltas; the next compactor step records it'::text)$$,
    'crash: the marker gone (reset not recorded yet) is critical'
);
SELECT is(tally.acknowledge_crash(), 0, 'acknowledge_crash: a reset not recorded yet is not acknowledged');
SELECT is((SELECT status FROM h WHERE "check" = 'crash'), 'critical', 'crash: so it stays critical');
-- The window lost: acknowledged since the older generation's folded_before
-- (every increment acknowledged before it is folded), up to the restart.
UPDATE tally.write_gen SET folded_before = ARRAY[pg_postmaster_start_time() - interval '1 second',
                                                 pg_postmaster_start_time() - interval '2 seconds'];
SELECT is(tally._detect_crash_reset(), true, '_detect_crash_reset returns true when the marker is gone');
SELECT is(tally._detect_crash_reset(), false, '_detect_crash_reset returns false the second time');
SELECT is((SELECT count(*) FROM tally.crash_marker), 1::bigint, '_detect_crash_reset puts the marker back');
SELECT results_eq(
    'SELECT detected_at, server_started_at, lost_since, lost_until, cause FROM tally.crash_resets',
    $$VALUES (now(), pg_postmaster_start_time(), pg_postmaster_start_time() - interval '2 seconds',
              pg_postmaster_start_time(), 'crash'::text)$$,
    'one reset recorded: now, the server start, lost since the older folded_before, until the restart, a crash'
);
SELECT is((SELECT status FROM h WHERE "check" = 'crash'), 'critical', 'crash: a reset detected in the last 24 h stays critical');
SELECT is(
    (SELECT reason FROM h WHERE "check" = 'crash'),
    format('crash reset detected at %s: fast increments acknowledged from %s to %s and not folded were lost; '
           'once reviewed, clear it with tally.acknowledge_crash()',
           now(), pg_postmaster_start_time() - interval '2 seconds', pg_postmaster_start_time()),
    'crash: the reason gives when the reset was detected, since when fast increments were lost, and how to clear it'
);
SELECT is(tally.acknowledge_crash(), 1, 'acknowledge_crash acknowledges the recorded reset');
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'crash'$$,
    $$SELECT 'ok'::text, format('crash reset detected at %s, acknowledged by %s at %s', now(), session_user::text COLLATE "default", now())$$,
    'crash: an acknowledged reset is ok, and says who acknowledged it'
);
SELECT is(tally.acknowledge_crash(), 0, 'acknowledge_crash: nothing left to acknowledge');
UPDATE tally.crash_resets SET acknowledged_at = NULL, acknowledged_by = NULL;
UPDATE tally.crash_resets SET detected_at = now() - interval '25 hours';
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'crash'$$,
    $$VALUES ('ok'::text, 'no crash reset in the last 24 hours'::text)$$,
    'crash: a reset over 24 h ago is ok again'
);
-- A promotion (recorded by the new primary's first compactor step) says so.
INSERT INTO tally.crash_resets (server_started_at, lost_since, lost_until, cause)
VALUES (now() - interval '1 hour', now() - interval '70 seconds', now() - interval '60 seconds', 'promotion');
SELECT is(
    (SELECT reason FROM h WHERE "check" = 'crash'),
    format('promotion detected at %s: fast increments acknowledged from %s to %s and not folded were lost; '
           'once reviewed, clear it with tally.acknowledge_crash()',
           now(), now() - interval '70 seconds', now() - interval '60 seconds'),
    'crash: a promotion names itself and its window'
);
SELECT is(tally.acknowledge_crash(), 2, 'acknowledge_crash acknowledges it (and the older one left unacknowledged)');

-- maintenance: the last run failed in part is warn; a missing event-id
-- partition for today or tomorrow is critical.
SELECT tally._record_fold(now(), 0, 1, 'failed', 'event_ids: 55000: broken', 'maintenance');
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'maintenance'$$,
    $$SELECT 'warn'::text, format('the last maintenance, at %s, failed in part: event_ids: 55000: broken',
                                  (SELECT max(finished_at) FROM tally.fold_runs))$$,
    'maintenance: a failed run is warn with its error'
);
SELECT is((SELECT status FROM h WHERE "check" = 'folds'), 'critical',
          'a maintenance failure is not counted as an abandoned fold (folds stays as it was)');
SELECT tally._record_fold(now(), 0, 1, 'ok', NULL, 'maintenance');
SELECT is((SELECT status FROM h WHERE "check" = 'maintenance'), 'ok', 'maintenance: a later clean run is ok');
DO $$ BEGIN
    EXECUTE format('DROP TABLE tally.%I', 'event_ids_p' || to_char((now() AT TIME ZONE 'UTC')::date, 'YYYYMMDD'));
END $$;
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'maintenance'$$,
    $$SELECT 'critical'::text, format('the event-id partition of %s and %s is missing: increments with an event id '
                                       'fail; run tally.maintain()', (now() AT TIME ZONE 'UTC')::date,
                                       (now() AT TIME ZONE 'UTC')::date + 1)$$,
    'maintenance: the event-id partition of today and tomorrow missing is critical'
);
-- Overdue: a compactor steps (the last flip under 10 minutes ago) but no
-- maintenance for 2 hours past the last one (or the install).
DO $$ BEGIN
    EXECUTE format('CREATE TABLE tally.%I PARTITION OF tally.event_ids FOR VALUES FROM (%L) TO (%L)',
                   'event_ids_p' || to_char((now() AT TIME ZONE 'UTC')::date, 'YYYYMMDD'),
                   (now() AT TIME ZONE 'UTC')::date, (now() AT TIME ZONE 'UTC')::date + 7);
END $$;
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'maintenance'$$,
    $$SELECT 'ok'::text, format('last maintenance at %s: ok; next due by %s', max(finished_at),
                                max(finished_at) + interval '1 hour')
      FROM tally.fold_runs WHERE mode = 'maintenance'$$,
    'maintenance: a clean run says when the next is due'
);
UPDATE tally.fold_runs SET finished_at = finished_at - interval '2 hours 1 minute' WHERE mode = 'maintenance';
UPDATE tally.write_gen SET flipped_at = now() - interval '11 minutes';
SELECT is((SELECT status FROM h WHERE "check" = 'maintenance'), 'ok',
          'maintenance: two hours late while no compactor runs is not overdue (nothing runs it)');
UPDATE tally.write_gen SET flipped_at = now() - interval '1 minute';
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'maintenance'$$,
    $$SELECT 'warn'::text, format('overdue: the compactor runs but maintenance has not since %s (due hourly): run '
                                  'tally.maintain(), or schedule it (tally.schedule_compactor(); '
                                  'tally compact --loop runs it)', max(finished_at))
      FROM tally.fold_runs WHERE mode = 'maintenance'$$,
    'maintenance: two hours late while a compactor runs is overdue (warn)'
);
DELETE FROM tally.fold_runs WHERE mode = 'maintenance';
UPDATE tally.install_baseline SET installed_at = now() - interval '3 hours';
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'maintenance'$$,
    $$SELECT 'warn'::text, format('overdue: the compactor runs but maintenance has not since install, at %s (due '
                                  'hourly): run tally.maintain(), or schedule it (tally.schedule_compactor(); '
                                  'tally compact --loop runs it)', now() - interval '3 hours')$$,
    'maintenance: never run, installed 3 hours ago, while a compactor runs: overdue'
);
-- backlog: the trend of the compactor's samples over 5 minutes
INSERT INTO tally.backlog_samples (sampled_at, pending)
SELECT now() - g * interval '10 seconds', 50000 + (29 - g) * 1000 FROM generate_series(0, 23) AS g;
SELECT is(
    (SELECT status FROM h WHERE "check" = 'backlog'), 'ok',
    'backlog: growing, but no sample older than 4 minutes yet: no trend, ok'
);
INSERT INTO tally.backlog_samples (sampled_at, pending)
SELECT now() - g * interval '10 seconds', 50000 + (29 - g) * 1000 FROM generate_series(24, 29) AS g;
INSERT INTO tally.fold_runs (started_at, finished_at, deltas, outcome, mode)
VALUES (now() - interval '200 s', now() - interval '100 s', 30000, 'ok', 'delete');
SELECT results_eq(
    $$SELECT status, reason FROM h WHERE "check" = 'backlog'$$,
    $$VALUES ('warn'::text, 'the backlog grew from 50000 to 79000 deltas in 290 s: writers add about 203/s, the '
                            'compactor folds about 103/s; add compactors (more plain ones, or tally compact --loop '
                            '--workers N) or slow the writers'::text)$$,
    'backlog: its floor of the last 2 minutes above its ceiling of the first, by 10,000 or more: warn, with the rates'
);
UPDATE tally.backlog_samples SET pending = 50000 WHERE sampled_at >= now() - interval '2 minutes' AND sampled_at < now();
SELECT is(
    (SELECT status FROM h WHERE "check" = 'backlog'), 'ok',
    'backlog: back down within the last 2 minutes is ok (a fold drained it)'
);
UPDATE tally.backlog_samples SET pending = 63000 WHERE sampled_at >= now() - interval '2 minutes';
SELECT is(
    (SELECT status FROM h WHERE "check" = 'backlog'), 'ok',
    'backlog: up by less than 10,000 over its earlier ceiling is ok'
);
SELECT is(
    (SELECT reason FROM h WHERE "check" = 'backlog'), 'not growing: 63000 deltas pending (sampled 0 s ago)',
    'backlog: the reason gives the latest sample'
);
DELETE FROM tally.backlog_samples WHERE sampled_at < now() - interval '4 minutes';
UPDATE tally.backlog_samples SET pending = 900000 WHERE sampled_at >= now() - interval '2 minutes';
SELECT is(
    (SELECT status FROM h WHERE "check" = 'backlog'), 'ok',
    'backlog: without samples of the first minute of the 5 there is no trend yet'
);
SELECT is((SELECT count(*) FROM h), 9::bigint, 'still exactly 9 checks');

SELECT * FROM finish();
ROLLBACK;
