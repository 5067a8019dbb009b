-- tally.maintain: under the fold lock, syncs pg_partman's retention, runs
-- pg_partman maintenance for each rollup table (one 'partitions' row each)
-- keeps the idempotency store's daily partitions (one 'event_ids' row)
-- and prunes tally.fold_runs rows older than 7 days (one 'fold_runs' row);
-- drops a minute partition past retention only once no counter keeps it;
-- leaves the caller's search_path, lock_timeout and time zone as they were.
BEGIN;
SELECT plan(20);

-- pg_partman aligns partitions to the session time zone: create the old one in UTC.
SET LOCAL timezone = 'UTC';
CREATE TEMP TABLE m_old ON COMMIT DROP AS
SELECT 'rollup_minute_p' || to_char(now() - interval '30 days', 'YYYY_MM_DD') AS part;
SELECT hasnt_table('tally', (SELECT part FROM m_old), 'precondition: no minute partition 30 days back');
SELECT partman.create_partition_time('tally.rollup_minute', ARRAY[date_trunc('day', now() - interval '30 days')]);
SELECT has_table('tally', (SELECT part FROM m_old), 'precondition: a minute partition 30 days back, past the 7-day retention');
CREATE TEMP TABLE m_minute_parts ON COMMIT DROP AS
SELECT inhrelid::regclass::text AS part FROM pg_catalog.pg_inherits WHERE inhparent = 'tally.rollup_minute'::regclass;

-- fold_runs: two rows older than 7 days, one younger.
INSERT INTO tally.fold_runs (started_at, deltas, outcome, shard, mode)
VALUES (now() - interval '8 days', 1, 'ok', 'm_old_1', 'delete'),
       (now() - interval '7 days 1 minute', 2, 'ok', 'm_old_2', 'delete'),
       (now() - interval '6 days 23 hours', 3, 'ok', 'm_young', 'delete');
CREATE TEMP TABLE m_prune ON COMMIT DROP AS
SELECT count(*) AS n FROM tally.fold_runs WHERE started_at < now() - interval '7 days';

-- A counter keeping its minutes forever, set without syncing pg_partman
-- (tally.set_retention would sync it): maintain() syncs before it drops.
SELECT tally.create_counter('m_keep', '{minute}');
INSERT INTO tally.retention (counter_id, granularity, keep)
SELECT id, 'minute', NULL FROM tally.counters WHERE name = 'm_keep';
SELECT is(
    (SELECT retention FROM partman.part_config WHERE parent_table = 'tally.rollup_minute'), '7 days',
    'precondition: pg_partman still has the 7-day minute retention'
);

-- The caller's settings, each distinct from what tally or pg_partman set.
SET LOCAL search_path = public, tap;
SET LOCAL lock_timeout = '4321ms';
SET LOCAL timezone = 'Europe/Paris';
CREATE TEMP TABLE m_settings ON COMMIT DROP AS
SELECT current_setting('search_path') AS search_path, current_setting('lock_timeout') AS lock_timeout,
       current_setting('TimeZone') AS timezone;

CREATE TEMP VIEW m_fold_lock AS
SELECT EXISTS (SELECT FROM pg_catalog.pg_locks
               WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid() AND granted
                 AND classid::bigint = tally._fold_lock_key() >> 32
                 AND objid::bigint = tally._fold_lock_key() & 4294967295) AS held;
SELECT is((SELECT held FROM m_fold_lock), false, 'precondition: this transaction does not hold the fold lock');

-- 1. First run: the minute partition is still kept by m_keep.
CREATE TEMP TABLE m1 ON COMMIT DROP AS SELECT * FROM tally.maintain() WITH ORDINALITY AS m (step, detail, n);
CREATE TEMP TABLE m_settings1 ON COMMIT DROP AS
SELECT current_setting('search_path') AS search_path, current_setting('lock_timeout') AS lock_timeout,
       current_setting('TimeZone') AS timezone;
SELECT results_eq(
    $$SELECT step, split_part(detail, ':', 1) FROM m1 ORDER BY n$$,
    $$VALUES ('partitions'::text, 'tally.rollup_day'::text), ('partitions', 'tally.rollup_hour'),
             ('partitions', 'tally.rollup_minute'), ('partitions', 'tally.rollup_month'),
             ('partitions', 'tally.rollup_week'),
             ('event_ids', format('window from %s', (now() AT TIME ZONE 'UTC')::date - 7)),
             ('fold_runs', format('%s rows older than 7 days pruned', (SELECT n FROM m_prune)))$$,
    'maintain() returns one partitions row per rollup table, one event_ids row for the idempotency store, '
    'then one fold_runs row with the rows pruned'
);
SELECT results_eq(
    $$SELECT detail FROM m1 WHERE step = 'partitions' ORDER BY n$$,
    $$SELECT format('%s: %s partitions (unchanged)', r, count(i.inhrelid))
      FROM unnest(ARRAY['tally.rollup_day', 'tally.rollup_hour', 'tally.rollup_minute', 'tally.rollup_month',
                        'tally.rollup_week']) AS r
      LEFT JOIN pg_catalog.pg_inherits AS i ON i.inhparent = r::regclass
      GROUP BY r ORDER BY r$$,
    'each partitions row gives the table''s partition count'
);
SELECT results_eq(
    $$SELECT shard FROM tally.fold_runs WHERE shard LIKE 'm\_%' ORDER BY 1$$,
    $$VALUES ('m_young'::text)$$,
    'fold_runs rows older than 7 days are pruned, a younger one is kept'
);
SELECT is(
    (SELECT count(*) FROM tally.fold_runs WHERE started_at < now() - interval '7 days'), 0::bigint,
    'no fold_runs row older than 7 days is left'
);
SELECT is(
    (SELECT retention FROM partman.part_config WHERE parent_table = 'tally.rollup_minute'), NULL,
    'maintain() synced pg_partman''s retention first: a counter keeps minutes forever'
);
SELECT has_table(
    'tally', (SELECT part FROM m_old),
    'so the minute partition 30 days back is kept'
);
SELECT is((SELECT held FROM m_fold_lock), true, 'maintain() took the fold lock (held until the transaction ends)');
SELECT is((SELECT search_path FROM m_settings1), (SELECT search_path FROM m_settings),
          'maintain() leaves the caller''s search_path as it was');
SELECT is((SELECT lock_timeout FROM m_settings1), (SELECT lock_timeout FROM m_settings),
          'maintain() leaves the caller''s lock_timeout as it was (200ms is a function setting)');
SELECT is((SELECT timezone FROM m_settings1), (SELECT timezone FROM m_settings),
          'maintain() leaves the caller''s time zone as it was');

-- 2. Once no counter keeps minutes past 7 days, the next run drops it.
SELECT tally.set_retention('m_keep', 'minute', '7 days');
CREATE TEMP TABLE m2 ON COMMIT DROP AS SELECT * FROM tally.maintain() WITH ORDINALITY AS m (step, detail, n);
CREATE TEMP TABLE m_settings2 ON COMMIT DROP AS
SELECT current_setting('search_path') AS search_path, current_setting('lock_timeout') AS lock_timeout,
       current_setting('TimeZone') AS timezone;
SELECT hasnt_table('tally', (SELECT part FROM m_old), 'the minute partition older than the retention was dropped');
SELECT set_eq(
    $$SELECT inhrelid::regclass::text FROM pg_catalog.pg_inherits WHERE inhparent = 'tally.rollup_minute'::regclass$$,
    $$SELECT part FROM m_minute_parts WHERE part <> 'tally.' || (SELECT part FROM m_old)$$,
    'the minute partitions within the retention are kept'
);
SELECT matches(
    (SELECT detail FROM m2 WHERE detail LIKE 'tally.rollup\_minute:%'),
    format('^tally\.rollup_minute: %s partitions \(', (SELECT count(*) - 1 FROM m_minute_parts)),
    'the rollup_minute row gives its new partition count'
);
-- The change is shown unpadded: '(-1)'.
SELECT is(
    (SELECT detail FROM m2 WHERE detail LIKE 'tally.rollup\_minute:%'),
    format('tally.rollup_minute: %s partitions (-1)', (SELECT count(*) - 1 FROM m_minute_parts)),
    'the rollup_minute row reads "N partitions (-1)"'
);
SELECT is(
    (SELECT detail FROM m2 WHERE step = 'fold_runs'), '0 rows older than 7 days pruned',
    'the second run has no fold_runs row left to prune'
);
SELECT results_eq(
    'SELECT search_path, lock_timeout, timezone FROM m_settings2',
    'SELECT search_path, lock_timeout, timezone FROM m_settings',
    'the second run, dropping a partition, leaves the caller''s settings as they were too'
);

SELECT * FROM finish();
ROLLBACK;
