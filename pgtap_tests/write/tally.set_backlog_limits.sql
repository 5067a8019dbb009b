-- tally.set_backlog_limits: writers slowed from one backlog, refused from
-- another (53400, nothing appended), admitted again below; the admission
-- follows the compactor's latest sample (tally.sample_backlog) and shows in
-- tally.health; bad limits refused.
BEGIN;
SELECT plan(27);

SELECT tally.create_counter('bp');
CREATE TEMP VIEW bp_state AS SELECT backlog_state, backlog_pending FROM tally.write_gen;

-- Off by default
SELECT results_eq('SELECT * FROM bp_state', $$VALUES (0::smallint, 0::bigint)$$, 'writers are admitted by default');
SELECT is(
    (SELECT (backlog_delay_at, backlog_refuse_at)::text FROM tally.settings), '(,)', 'no limit is set by default'
);

-- Bad limits
SELECT throws_ok(
    $$SELECT tally.set_backlog_limits(0, 10)$$, '22023',
    'tally.set_backlog_limits: a limit must be at least 1 delta, got 0 and 10',
    'a limit below 1 is refused'
);
SELECT throws_ok(
    $$SELECT tally.set_backlog_limits(10, 10)$$, '22023',
    'tally.set_backlog_limits: the delay limit 10 must be below the refuse limit 10',
    'a delay limit not below the refuse limit is refused'
);
SELECT is(
    (SELECT (backlog_delay_at, backlog_refuse_at)::text FROM tally.settings), '(,)', 'a refused call changes nothing'
);

-- The samples: at most one every 10 s
SELECT tally.increment_counter('bp', 'k');
SELECT isnt(tally.sample_backlog(), NULL, 'sample_backlog takes a sample');
SELECT is(tally.sample_backlog(), NULL, 'and none again within 10 s');
SELECT is((SELECT count(*) FROM tally.backlog_samples), 1::bigint, 'one sample kept');

-- Slowed
DELETE FROM tally.backlog_samples;
INSERT INTO tally.backlog_samples (sampled_at, pending) VALUES (now(), 120);
SELECT lives_ok($$SELECT tally.set_backlog_limits(100, 200)$$, 'limits 100 and 200 are set');
SELECT results_eq(
    'SELECT * FROM bp_state', $$VALUES (1::smallint, 120::bigint)$$,
    'the latest sample (120) is over the delay limit: writers are slowed at once'
);
CREATE TEMP TABLE bp_before ON COMMIT DROP AS SELECT count(*) AS n FROM tally.delta;
SELECT is(tally.increment_counter('bp', 'k', 1), true, 'a slowed single increment is applied');
SELECT is(
    tally.increment_counters('{bp,bp}', '{a,b}', '{1,1}'), 2::bigint, 'a slowed batch is applied'
);
SELECT is(tally.increment_counter('bp', 'k', 1, now(), 'e-1'), true, 'a slowed increment with an event id is applied');
SELECT is((SELECT count(*) FROM tally.delta) - (SELECT n FROM bp_before), 4::bigint, 'all four deltas are appended');
SELECT is((SELECT status FROM tally.health WHERE "check" = 'backlog'), 'warn', 'health: backlog warns');
SELECT is(
    (SELECT reason FROM tally.health WHERE "check" = 'backlog'),
    'writers slowed: the backlog of 120 deltas is over the limit of 100 (tally.set_backlog_limits)',
    'and says why'
);

-- Refused
SELECT lives_ok($$SELECT tally.set_backlog_limits(50, 100)$$, 'limits 50 and 100 are set');
SELECT results_eq('SELECT * FROM bp_state', $$VALUES (2::smallint, 120::bigint)$$, 'over the refuse limit: refused');
SELECT throws_ok(
    $$SELECT tally.increment_counter('bp', 'k')$$, '53400',
    'tally.increment_counter: the backlog of 120 deltas is over the limit of 100 (tally.set_backlog_limits): '
    '1 increments refused',
    'a single increment is refused with configuration_limit_exceeded'
);
SELECT throws_ok(
    $$SELECT tally.increment_counters('{bp,bp}', '{a,b}', '{1,1}')$$, '53400',
    'tally.increment_counters: the backlog of 120 deltas is over the limit of 100 (tally.set_backlog_limits): '
    '2 increments refused',
    'a batch is refused whole'
);
SELECT throws_ok(
    $$SELECT tally.increment_counter('bp', 'k', 1, now(), 'e-2')$$, '53400', NULL,
    'an increment with an event id is refused'
);
SELECT throws_ok(
    $$SELECT tally.increment_counter('bp', '', 1)$$, '22004', NULL,
    'bad input still gets its own error first'
);
SELECT is((SELECT count(*) FROM tally.delta) - (SELECT n FROM bp_before), 4::bigint, 'nothing more was appended');
SELECT is((SELECT count(*) FROM tally.event_ids WHERE event_id = 'e-2'), 0::bigint, 'nor the refused event id claimed');
SELECT is((SELECT status FROM tally.health WHERE "check" = 'backlog'), 'critical', 'health: backlog is critical');

-- Below the limits again, or limits off: admitted
INSERT INTO tally.backlog_samples (sampled_at, pending) VALUES (now() + interval '1 second', 10);
SELECT tally.set_backlog_limits(50, 100);
SELECT results_eq('SELECT * FROM bp_state', $$VALUES (0::smallint, 10::bigint)$$, 'below the limits: admitted');
SELECT tally.set_backlog_limits(NULL, NULL);
SELECT is(tally.increment_counter('bp', 'k'), true, 'with the limits off a single increment is applied');

SELECT * FROM finish();
ROLLBACK;
