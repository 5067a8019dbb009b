-- tally.track_table / untrack_table: a counter kept equal to a table's rows
-- per key through every kind of statement, one delta per (key, minute) per
-- statement, the backfill, every refusal (hostile p_where and column names
-- included), what DDL on a tracked table does, and untracking.
BEGIN;
SELECT plan(79);

CREATE TABLE tt_follow (id bigserial PRIMARY KEY, subject bigint, follower bigint);
INSERT INTO tt_follow (subject, follower) SELECT g % 4, g FROM generate_series(1, 100) AS g;
INSERT INTO tt_follow (subject, follower) VALUES (NULL, 1), (NULL, 2);
SELECT tally.create_counter('tt_followers', p_durable => true);

-- what every test below compares: the counter against COUNT(*) per key
CREATE FUNCTION pg_temp.tt_mismatches() RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM (
        SELECT k.subject, tally.counter_value('tt_followers', k.subject::text) AS value,
               (SELECT count(*) FROM tt_follow AS f WHERE f.subject = k.subject) AS truth
        FROM (SELECT DISTINCT subject FROM tt_follow WHERE subject IS NOT NULL
              UNION SELECT g FROM generate_series(0, 9) AS g) AS k
    ) AS c WHERE c.value <> c.truth
$$;

SELECT is(tally.track_table('tt_followers', 'tt_follow', 'subject'), 100::bigint,
          'track_table counts the rows there (NULL keys not counted) and returns the count');
SELECT is(pg_temp.tt_mismatches(), 0::bigint, 'after the backfill every key equals COUNT(*)');
SELECT results_eq(
    $$SELECT state, backfilled, predicate FROM tally.tracked_tables AS t
      JOIN tally.counters AS c ON c.id = t.counter_id WHERE c.name = 'tt_followers'$$,
    $$VALUES ('active'::text, 100::bigint, NULL::text)$$,
    'tally.tracked_tables lists it, active, with the count backfilled'
);
SELECT set_eq(
    $$SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'tt_follow'::regclass$$,
    $$SELECT format('tally_%s_%s', c.id, e) FROM tally.counters AS c,
      unnest('{insert,update,delete,truncate}'::text[]) AS e WHERE c.name = 'tt_followers'$$,
    'four statement triggers on the table'
);

INSERT INTO tt_follow (subject, follower) VALUES (1, 500);
INSERT INTO tt_follow (subject, follower) SELECT g % 3, g FROM generate_series(1000, 1999) AS g;
SELECT is(pg_temp.tt_mismatches(), 0::bigint, 'single-row and multi-row INSERT');
SELECT results_eq(
    $$SELECT count(*), sum(d.delta) FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id
      WHERE c.name = 'tt_followers' AND d.at = now() AND d.delta > 300$$,
    $$VALUES (3::bigint, 1000::numeric)$$,
    'a 1,000-row INSERT ... SELECT over 3 keys appends 3 deltas (one per key and minute), not 1,000'
);
DELETE FROM tt_follow WHERE follower BETWEEN 1000 AND 1500;
UPDATE tt_follow SET subject = 7 WHERE subject = 2 AND follower < 50;
UPDATE tt_follow SET subject = NULL WHERE subject = 1 AND follower < 30;
UPDATE tt_follow SET subject = 5 WHERE subject IS NULL;
SELECT is(pg_temp.tt_mismatches(), 0::bigint, 'DELETE, and UPDATE moving rows between keys, to and from NULL');
INSERT INTO tt_follow (id, subject, follower) VALUES (1, 3, 1), (100000, 3, 7000), (2, 9, 2)
ON CONFLICT (id) DO UPDATE SET subject = excluded.subject;
SELECT is(pg_temp.tt_mismatches(), 0::bigint, 'INSERT ... ON CONFLICT DO UPDATE (inserted and updated rows)');
MERGE INTO tt_follow AS f USING (VALUES (3::bigint, 5::bigint), (100001, 6), (100002, NULL)) AS v (id, s)
ON f.id = v.id
WHEN MATCHED THEN UPDATE SET subject = v.s
WHEN NOT MATCHED THEN INSERT (id, subject, follower) VALUES (v.id, v.s, 0);
MERGE INTO tt_follow AS f USING (VALUES (4::bigint)) AS v (id) ON f.id = v.id WHEN MATCHED THEN DELETE;
SELECT is(pg_temp.tt_mismatches(), 0::bigint, 'MERGE updating, inserting and deleting');
SAVEPOINT tt_s;
INSERT INTO tt_follow (subject, follower) VALUES (8, 8000), (8, 8001);
ROLLBACK TO SAVEPOINT tt_s;
SELECT is(pg_temp.tt_mismatches(), 0::bigint, 'a rolled-back statement counts nothing');
SELECT is(tally.counter_value('tt_followers', '8'), 0::bigint, '... the key it touched included');
CREATE TEMP TABLE tt_fold ON COMMIT DROP AS SELECT tally._fold(1000000) AS n;
DELETE FROM tt_follow WHERE follower % 5 = 0;
SELECT is(pg_temp.tt_mismatches(), 0::bigint, 'folded plus pending');
TRUNCATE tt_follow;
SELECT is(pg_temp.tt_mismatches(), 0::bigint, 'TRUNCATE takes every row away');
SELECT is(tally.counter_value('tt_followers', '3'), 0::bigint, '... to 0');
INSERT INTO tt_follow (subject, follower) VALUES (3, 1);
SELECT is(tally.counter_value('tt_followers', '3'), 1::bigint, 'and counting goes on after it');

-- A dated, filtered table summing a column: buckets follow the row's time.
CREATE TABLE tt_post (id bigserial PRIMARY KEY, author text, created_at timestamptz, credits integer,
                      visible boolean NOT NULL DEFAULT true, deleted boolean NOT NULL DEFAULT false);
INSERT INTO tt_post (author, created_at, credits, visible) VALUES
    ('ann', '2026-11-01 10:15+00', 5, true), ('ann', '2026-11-01 10:45+00', 7, true),
    ('ann', '2026-11-01 11:05+00', 100, false), ('bob', '2026-11-02 09:00+00', 1, true),
    ('bob', NULL, 50, true), ('', '2026-11-01 10:00+00', 9, true);
SELECT tally.create_counter('tt_credits', '{hour,day}');
SELECT tally.set_retention('tt_credits', 'hour', NULL);
SELECT is(tally.track_table('tt_credits', 'tt_post', 'author', 'created_at', 'credits', 'visible AND NOT deleted'),
          13::bigint, 'with a sum column and p_where: the sum of the rows where it holds (no time, no key: not counted)');
SELECT is((SELECT predicate FROM tally.tracked_tables AS t JOIN tally.counters AS c ON c.id = t.counter_id
           WHERE c.name = 'tt_credits'),
          '(visible AND (NOT deleted))', 'p_where is kept as PostgreSQL renders it');
UPDATE tt_post SET visible = true WHERE credits = 100;
UPDATE tt_post SET created_at = created_at + interval '1 day' WHERE credits = 7;
INSERT INTO tt_post (author, created_at, credits) VALUES ('ann', '2026-11-01 10:20+00', 2);
UPDATE tt_post SET deleted = true WHERE author = 'bob';
SELECT results_eq(
    $$SELECT bucket, value FROM tally.counter_series('tt_credits', 'ann', 'hour',
      '2026-11-01 00:00+00', '2026-11-03 00:00+00') WHERE value <> 0$$,
    $$SELECT date_trunc('hour', created_at, 'UTC'), sum(credits)::bigint FROM tt_post
      WHERE author = 'ann' AND visible AND NOT deleted GROUP BY 1 ORDER BY 1$$,
    'each hour bucket equals the grouped sum: rows moved in by p_where and to another day by their timestamp'
);
SELECT is(tally.counter_value('tt_credits', 'bob'), 0::bigint, 'rows leaving p_where are taken away');
SELECT is(tally.counter_value('tt_credits', 'ann'), 114::bigint, 'the total follows');

-- Rows the counter cannot take stop the application's statement.
SELECT throws_ok($$INSERT INTO tt_post (author, created_at, credits) VALUES (repeat('k', 513), now(), 1)$$,
                 '22001', NULL, 'a key over 512 bytes: 22001, the INSERT fails');
SELECT throws_ok($$INSERT INTO tt_post (author, created_at, credits) VALUES ('ann', '1960-01-01', 1)$$,
                 '22008', NULL, 'a timestamp before 1970: 22008, the INSERT fails');
SELECT is((SELECT count(*) FROM tt_post WHERE created_at < '1970-01-01' OR length(author) > 512), 0::bigint,
          'neither row is there');

-- The backlog limits (tally.set_backlog_limits) hold tracked writes back too.
SELECT tally.set_backlog_limits(100, 200);
UPDATE tally.write_gen SET backlog_state = 2, backlog_pending = 500;
SELECT throws_ok($$INSERT INTO tt_post (author, created_at, credits) VALUES ('ann', now(), 1)$$, '53400',
                 'tally: table tap.tt_post, counted by counter "tt_credits": the backlog of 500 deltas is over the limit of 200 (tally.set_backlog_limits): 1 increments refused',
                 'past the refuse limit a tracked table''s INSERT is refused (53400)');
UPDATE tally.write_gen SET backlog_state = 1, backlog_pending = 150;
INSERT INTO tt_post (author, created_at, credits) VALUES ('ann', now(), 1);
SELECT is(tally.counter_value('tt_credits', 'ann'), 115::bigint, 'past the delay limit it waits, then counts');
UPDATE tally.write_gen SET backlog_state = 0, backlog_pending = 0;
DELETE FROM tt_post WHERE author = 'ann' AND credits = 1;
SELECT is(tally.counter_value('tt_credits', 'ann'), 114::bigint, 'and with no limit reached, as before');

-- A writer needs no grant on tally.
CREATE ROLE tt_app;
GRANT USAGE ON SCHEMA tap TO tt_app;
GRANT INSERT, SELECT, UPDATE, DELETE ON tt_follow TO tt_app;
GRANT USAGE ON SEQUENCE tt_follow_id_seq TO tt_app;
SET ROLE tt_app;
INSERT INTO tt_follow (subject, follower) VALUES (3, 2), (4, 3);
DELETE FROM tt_follow WHERE follower = 3;
RESET ROLE;
SELECT is(tally.counter_value('tt_followers', '3'), 2::bigint, 'an application role without any grant on tally writes');
SELECT ok(NOT has_schema_privilege('tt_app', 'tally', 'USAGE'), '... and has none');

-- Refusals: nothing is tracked, nothing changes.
SELECT tally.create_counter('tt_c');
CREATE VIEW tt_view AS SELECT * FROM tt_follow;
CREATE TABLE tt_parted (k text, at timestamptz) PARTITION BY RANGE (at);
CREATE TABLE tt_parent (k text);
CREATE TABLE tt_child () INHERITS (tt_parent);
CREATE TEMP TABLE tt_temp (k text);
CREATE FUNCTION tt_mine(bigint) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true';
-- (were it ever run by tally, its own error would say so)
CREATE FUNCTION tt_evil() RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RAISE EXCEPTION 'tt_evil ran as %', current_user; END $$;
CREATE FUNCTION tt_evil(boolean) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RAISE EXCEPTION 'tt_evil ran as %', current_user; END $$;
CREATE DOMAIN tt_dom AS boolean CHECK (tt_evil(VALUE));
CREATE UNLOGGED TABLE tt_unlogged (k text);
CREATE TABLE tt_dated (k date);
SELECT throws_ok($$SELECT tally.track_table('nope', 'tt_follow', 'subject')$$, '42704', NULL, 'unknown counter: 42704');
SELECT throws_ok($$SELECT tally.track_table('tt_c', NULL, 'subject')$$, '22004', NULL, 'NULL table: 22004');
SELECT throws_ok($$SELECT tally.track_table('tt_c', 'tt_follow', NULL)$$, '22004', NULL, 'NULL key column: 22004');
SELECT throws_ok($$SELECT tally.track_table('tt_c', 'tt_follow', 'nope')$$, '42703',
                 'tally.track_table: table tap.tt_follow has no column nope (p_key_column)', 'unknown key column: 42703');
SELECT throws_ok($$SELECT tally.track_table('tt_c', 'tt_follow', 'subject', 'xmin')$$, '42703', NULL,
                 'a system column: 42703');
SELECT throws_ok($$SELECT tally.track_table('tt_c', 'tt_follow', 'subject', 'follower')$$, '42804', NULL,
                 'an at column not timestamptz: 42804');
SELECT throws_ok($$SELECT tally.track_table('tt_c', 'tt_post', 'author', p_sum_column => 'author')$$, '42804', NULL,
                 'a sum column not of an integer type: 42804');
SELECT throws_ok($$SELECT tally.track_table('tt_c', 'tt_view', 'subject')$$, '42809', NULL, 'a view: 42809');
SELECT throws_ok($$SELECT tally.track_table('tt_c', 'tt_parted', 'k')$$, '0A000', NULL, 'a partitioned table: 0A000');
SELECT throws_ok($$SELECT tally.track_table('tt_c', 'tt_parent', 'k')$$, '0A000', NULL, 'an inheritance parent: 0A000');
SELECT throws_ok($$SELECT tally.track_table('tt_c', 'tt_child', 'k')$$, '0A000', NULL, 'an inheritance child: 0A000');
SELECT throws_ok($$SELECT tally.track_table('tt_c', 'tt_temp', 'k')$$, '0A000', NULL, 'a temporary table: 0A000');
SELECT throws_ok($$SELECT tally.track_table('tt_c', 'tt_unlogged', 'k')$$, '0A000', NULL,
                 'an unlogged table (a crash empties it, not its counter): 0A000');
SELECT throws_ok($$SELECT tally.track_table('tt_c', 'tt_dated', 'k')$$, '42804', NULL,
                 'a key column whose text depends on settings (date): 42804');
SELECT throws_ok($$SELECT tally.track_table('tt_followers', 'tt_post', 'author')$$, '42710', NULL,
                 'a counter that counts a table already: 42710');
SELECT tally.increment_counter('tt_c', 'x');
SELECT throws_ok($$SELECT tally.track_table('tt_c', 'tt_follow', 'subject')$$, '55000', NULL,
                 'a counter with data: 55000');
SELECT tally.create_counter('tt_e');
SELECT throws_ok($$SELECT tally.track_table('tt_e', 'tt_follow', 'subject', p_where => ' ')$$, '22023', NULL,
                 'an empty p_where: 22023');
SELECT throws_ok($$SELECT tally.track_table('tt_e', 'tt_follow', 'subject',
                   p_where => 'true); DROP TABLE tt_post; SELECT (true')$$, '22023', NULL,
                 'p_where smuggling a second statement: 22023');
SELECT throws_ok($$SELECT tally.track_table('tt_e', 'tt_follow', 'subject', p_where => 'follower > 0 --')$$,
                 '22023', NULL, 'p_where commenting the rest out: 22023');
SELECT throws_ok($$SELECT tally.track_table('tt_e', 'tt_follow', 'subject',
                   p_where => '(SELECT count(*) FROM tap.tt_post) > 0')$$, '22023', NULL,
                 'p_where with a subquery reading another table: 22023');
SELECT throws_ok($$SELECT tally.track_table('tt_e', 'tt_follow', 'subject', p_where => 'random() < 0.5')$$,
                 '22023', NULL, 'a volatile p_where: 22023');
SELECT throws_ok($$SELECT tally.track_table('tt_e', 'tt_follow', 'subject', p_where => 'now() > ''2020-01-01''')$$,
                 '22023', NULL, 'a stable p_where (now()): 22023');
SELECT throws_ok($$SELECT tally.track_table('tt_e', 'tt_follow', 'subject', p_where => 'tap.tt_mine(follower)')$$,
                 '22023', NULL, 'p_where calling a function that is not built in (it would run as tally): 22023');
SELECT throws_ok($$SELECT tally.track_table('tt_e', 'tt_follow', 'subject', p_where => 'tap.tt_evil()')$$,
                 '22023', 'tally.track_table: p_where ''tap.tt_evil()'' uses function tap.tt_evil(), not only the table''s columns and what is built into PostgreSQL',
                 'p_where calling a function of anyone''s is refused before anything runs it');
SELECT throws_ok($$SELECT tally.track_table('tt_e', 'tt_follow', 'subject', p_where => '(follower > 0)::tap.tt_dom')$$,
                 '22023', 'tally.track_table: p_where ''(follower > 0)::tap.tt_dom'' uses type tap.tt_dom, not only the table''s columns and what is built into PostgreSQL',
                 'p_where casting to a domain (whose CHECK could run anything) is refused');
CREATE ROLE tt_admin2 IN ROLE tally_admin;
GRANT USAGE ON SCHEMA tap TO tt_admin2;
CREATE TABLE tt_outcome (state text);
GRANT INSERT ON tt_outcome TO tt_admin2;
SET SESSION AUTHORIZATION tt_admin2;
DO $$
BEGIN
    PERFORM tally.track_table('tt_e', 'tap.tt_follow', 'subject');
    INSERT INTO tap.tt_outcome VALUES ('tracked');
EXCEPTION WHEN OTHERS THEN
    INSERT INTO tap.tt_outcome VALUES (SQLSTATE);
END $$;
RESET SESSION AUTHORIZATION;
SELECT is((SELECT state FROM tt_outcome), '42501',
          'a tally_admin who may not read the table and put triggers on it is refused: 42501');
SELECT throws_ok($$SELECT tally.track_table('tt_e', 'tt_follow', 'subject', p_where => 'follower')$$,
                 '22023', NULL, 'a p_where that is not boolean: 22023');
SELECT is((SELECT count(*) FROM tally.tracked_tables AS t JOIN tally.counters AS c ON c.id = t.counter_id
           WHERE c.name IN ('tt_c', 'tt_e')), 0::bigint, 'none of them tracked anything');
SELECT is((SELECT count(*) FROM tt_post), 7::bigint, 'and the smuggled DROP TABLE never ran');
DROP VIEW tt_view;

-- Column names are identifiers, never SQL.
CREATE TABLE tt_odd ("key; DROP TABLE tt_post; --" text, "Created At" timestamptz, "n""q" integer);
INSERT INTO tt_odd VALUES ('a', now(), 3), ('a', now(), 4);
SELECT is(tally.track_table('tt_e', 'tt_odd', 'key; DROP TABLE tt_post; --', 'Created At', 'n"q'), 7::bigint,
          'hostile column names are quoted: counted, nothing run');
INSERT INTO tt_odd VALUES ('a', now(), 10);
SELECT is(tally.counter_value('tt_e', 'a'), 17::bigint, '... and counted by the triggers');

-- DDL on a tracked table.
ALTER TABLE tt_follow RENAME COLUMN subject TO subject_id;
ALTER TABLE tt_follow RENAME TO tt_follows;
INSERT INTO tt_follows (subject_id, follower) VALUES (3, 9001);
SELECT is(tally.counter_value('tt_followers', '3'), 3::bigint, 'a renamed key column and table are followed');
SELECT throws_ok($$ALTER TABLE tt_follows DROP COLUMN subject_id$$, '2BP01', NULL,
                 'dropping the key column is refused: 2BP01 (untrack first)');
SELECT throws_ok($$ALTER TABLE tt_follows ALTER COLUMN subject_id TYPE text$$, '2BP01', NULL,
                 'changing its type is refused: 2BP01');
SELECT throws_ok($$ALTER TABLE tt_post RENAME COLUMN visible TO shown$$, '2BP01', NULL,
                 'renaming a column p_where uses is refused: 2BP01');
SELECT throws_ok($$ALTER TABLE tt_follows DISABLE TRIGGER ALL$$, '2BP01', NULL,
                 'disabling tally''s triggers is refused: 2BP01');
SELECT throws_ok($$ALTER TABLE tt_follows ALTER COLUMN subject_id TYPE bigint USING subject_id + 1$$, '2BP01', NULL,
                 'a rewrite of its rows (same type, USING) is refused: 2BP01');
SELECT throws_ok($$CREATE TABLE tt_follows_child () INHERITS (tt_follows)$$, '2BP01', NULL,
                 'a child table inheriting from it is refused: 2BP01');
SELECT throws_ok(format('ALTER TRIGGER %I ON tt_follows RENAME TO x',
                        (SELECT format('tally_%s_insert', id) FROM tally.counters WHERE name = 'tt_followers')),
                 '2BP01', NULL, 'renaming one of its triggers is refused: 2BP01');
SELECT throws_ok(format('DROP TRIGGER %I ON tt_follows',
                        (SELECT format('tally_%s_insert', id) FROM tally.counters WHERE name = 'tt_followers')),
                 '2BP01', NULL, 'dropping one of them is refused: 2BP01');
CREATE SCHEMA tt_app_s;
CREATE TABLE tt_app_s.tt_likes (k text);
INSERT INTO tt_app_s.tt_likes VALUES ('a'), ('a');
SELECT tally.create_counter('tt_likes');
SELECT tally.track_table('tt_likes', 'tt_app_s.tt_likes', 'k');
ALTER SCHEMA tt_app_s RENAME TO tt_app_s2;
TRUNCATE tt_app_s2.tt_likes;
INSERT INTO tt_app_s2.tt_likes VALUES ('a');
SELECT is(tally.counter_value('tt_likes', 'a'), 1::bigint, 'a renamed schema is followed (TRUNCATE included)');
SELECT tally.untrack_table('tt_likes', 'tt_app_s2.tt_likes');
ALTER TABLE tt_follows ADD COLUMN note text;
INSERT INTO tt_follows (subject_id, follower, note) VALUES (3, 9002, 'x');
SELECT is(tally.counter_value('tt_followers', '3'), 4::bigint, 'other DDL goes through, counting goes on');

-- Untracking, dropping the table, dropping the counter.
SELECT throws_ok($$SELECT tally.untrack_table('tt_followers', 'tt_post')$$, '42704', NULL,
                 'untrack_table of a table the counter does not count: 42704');
SELECT tally.untrack_table('tt_followers', 'tt_follows');
INSERT INTO tt_follows (subject_id, follower) VALUES (3, 9003);
SELECT is(tally.counter_value('tt_followers', '3'), 4::bigint, 'untracked: the counter keeps its value, stops counting');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tt_follows'::regclass AND tgname LIKE 'tally%'),
          0::bigint, '... its triggers are gone');
SELECT is((SELECT count(*) FROM tally.sources AS s JOIN tally.counters AS c ON c.id = s.counter_id
           WHERE c.name = 'tt_followers'), 0::bigint, '... and the source track_table registered');
SELECT is((SELECT count(*) FROM tally.sources AS s JOIN tally.counters AS c ON c.id = s.counter_id
           WHERE c.name = 'tt_credits'), 1::bigint, 'a tracked counter has its source registered');
DROP TABLE tt_post;
SELECT is((SELECT count(*) FROM tally.tracked_tables AS t JOIN tally.counters AS c ON c.id = t.counter_id
           WHERE c.name = 'tt_credits'), 0::bigint, 'DROP TABLE of a tracked table untracks it');
SELECT is(tally.counter_value('tt_credits', 'ann'), 114::bigint, '... and the counter stays readable');
SELECT tally.drop_counter('tt_e');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tt_odd'::regclass), 0::bigint,
          'drop_counter takes the triggers of the table it counted away');
INSERT INTO tt_odd VALUES ('a', now(), 1);
SELECT is((SELECT count(*) FROM pg_proc WHERE pronamespace = 'tally'::regnamespace AND proname LIKE '\_tracked\_%'),
          0::bigint, 'no trigger function is left behind');

SELECT * FROM finish();
ROLLBACK;
