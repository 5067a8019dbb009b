"""Tracked tables under load: 8 writers doing every kind of statement on a
follow table and a dated, filtered post table (10% of transactions rolled
back), compactors folding, and the tables tracked in the middle of it,
online and not. The tables themselves are the ground truth: every counter
must equal COUNT(*) (or the sum) per key, every bucket the grouped count:
under load (a REPEATABLE READ snapshot sees a table and its counters in
step, as the triggers' deltas commit with the rows), before and after the
final fold, with no deadlock."""

from __future__ import annotations

import random
import threading
import time
import traceback
from datetime import UTC, datetime, timedelta

import psycopg
import workers
from load import keep_everything

WRITERS = 8
SUBJECTS = 200
AUTHORS = 40
FOLLOW_SQL = "subject IS NOT NULL"
POST_SQL = "author IS NOT NULL AND author <> '' AND visible AND NOT deleted"

SCHEMA = """
CREATE TABLE follow (
    id bigserial PRIMARY KEY,
    subject integer,
    follower integer NOT NULL,
    UNIQUE (follower, subject)
);
CREATE TABLE post (
    id bigserial PRIMARY KEY,
    writer integer NOT NULL,
    n integer NOT NULL,
    author text,
    created_at timestamptz NOT NULL,
    credits integer,
    visible boolean NOT NULL DEFAULT true,
    deleted boolean NOT NULL DEFAULT false,
    UNIQUE (writer, n)
);
"""


def _subject(rnd: random.Random) -> int | None:
    r = rnd.random()
    if r < 0.03:
        return None
    return 0 if r < 0.3 else rnd.randint(1, SUBJECTS)


def _author(rnd: random.Random) -> str | None:
    r = rnd.random()
    if r < 0.02:
        return None
    if r < 0.04:
        return ""
    return "hot" if r < 0.3 else f"a{rnd.randint(1, AUTHORS)}"


def _at(rnd: random.Random) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=rnd.uniform(0, 3 * 86400))


def _follower(rnd: random.Random, me: int) -> int:
    # each writer owns the followers = me (mod WRITERS): the application's
    # own row locks never cross writers, so any deadlock would be tally's
    return rnd.randint(0, 2_000) * WRITERS + me


def _follow_statement(cur: psycopg.Cursor, rnd: random.Random, me: int) -> None:
    kind = rnd.randrange(8)
    if kind == 0:
        cur.execute(
            "INSERT INTO follow (subject, follower) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (_subject(rnd), _follower(rnd, me)),
        )
    elif kind == 1:
        rows = [(_subject(rnd), _follower(rnd, me)) for _ in range(rnd.randint(2, 30))]
        cur.execute(
            "INSERT INTO follow (subject, follower) SELECT * FROM unnest(%s::int[], %s::int[]) ON CONFLICT DO NOTHING",
            ([r[0] for r in rows], [r[1] for r in rows]),
        )
    elif kind == 2:
        rows = {(_subject(rnd), _follower(rnd, me)) for _ in range(rnd.randint(1, 40))}
        # COPY cannot skip a conflict: take out the pairs there already
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS copy_in (subject int, follower int)")
        cur.execute("TRUNCATE copy_in")
        with cur.copy("COPY copy_in (subject, follower) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
        cur.execute(
            "DELETE FROM copy_in AS c USING follow AS f"
            " WHERE f.follower = c.follower AND f.subject IS NOT DISTINCT FROM c.subject"
        )
        fresh = cur.execute("SELECT subject, follower FROM copy_in").fetchall()
        with cur.copy("COPY follow (subject, follower) FROM STDIN") as cp:
            for row in fresh:
                cp.write_row(row)
    elif kind == 3:
        cur.execute(
            "DELETE FROM follow WHERE follower %% %s = %s AND follower BETWEEN %s AND %s",
            (WRITERS, me, _follower(rnd, me), _follower(rnd, me) + 200),
        )
    elif kind == 4:
        cur.execute(
            "DELETE FROM follow WHERE id = (SELECT id FROM follow WHERE follower %% %s = %s AND subject = %s LIMIT 1)",
            (WRITERS, me, _subject(rnd)),
        )
    elif kind == 5:
        # a row changes key (or to / from NULL): its count moves
        subject, lo = _subject(rnd), _follower(rnd, me)
        cur.execute(
            "UPDATE follow SET subject = %s WHERE follower %% %s = %s AND follower BETWEEN %s AND %s"
            " AND NOT EXISTS (SELECT 1 FROM follow AS f2 WHERE f2.follower = follow.follower AND f2.subject = %s)",
            (subject, WRITERS, me, lo, lo + 100, subject),
        )
    elif kind == 6:
        # an update that changes nothing counted
        cur.execute(
            "UPDATE follow SET follower = follower WHERE follower %% %s = %s AND subject = %s",
            (WRITERS, me, _subject(rnd)),
        )
    else:
        cur.execute(
            "INSERT INTO follow (subject, follower) VALUES (%s, %s) ON CONFLICT (follower, subject)"
            " DO UPDATE SET subject = excluded.subject",
            (_subject(rnd), _follower(rnd, me)),
        )


def _post_statement(cur: psycopg.Cursor, rnd: random.Random, me: int) -> None:
    kind = rnd.randrange(7)
    n = rnd.randint(1, 3_000)
    if kind == 0:
        cur.execute(
            "INSERT INTO post (writer, n, author, created_at, credits) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (writer, n) DO UPDATE SET author = excluded.author, created_at = excluded.created_at,"
            " credits = excluded.credits",
            (me, n, _author(rnd), _at(rnd), rnd.choice([None, 0, 1, 2, 7, 30])),
        )
    elif kind == 1:
        k = rnd.randint(2, 40)
        cur.execute(
            "INSERT INTO post (writer, n, author, created_at, credits, visible)"
            " SELECT %s, u.n, u.a, u.t, u.c, u.v FROM unnest(%s::int[], %s::text[], %s::timestamptz[], %s::int[],"
            " %s::boolean[]) AS u (n, a, t, c, v) ON CONFLICT (writer, n) DO NOTHING",
            (
                me,
                [rnd.randint(1, 3_000) for _ in range(k)],
                [_author(rnd) for _ in range(k)],
                [_at(rnd) for _ in range(k)],
                [rnd.randint(0, 9) for _ in range(k)],
                [rnd.random() < 0.9 for _ in range(k)],
            ),
        )
    elif kind == 2:
        # visibility flips: rows move in and out of p_where
        cur.execute("UPDATE post SET visible = NOT visible WHERE writer = %s AND n BETWEEN %s AND %s", (me, n, n + 30))
    elif kind == 3:
        cur.execute("UPDATE post SET deleted = NOT deleted WHERE writer = %s AND n BETWEEN %s AND %s", (me, n, n + 20))
    elif kind == 4:
        # the timestamp moves: the row changes buckets
        cur.execute(
            "UPDATE post SET created_at = created_at - interval '5 hours', credits = coalesce(credits, 0) + 1"
            " WHERE writer = %s AND n BETWEEN %s AND %s AND created_at > now() - interval '3 days'",
            (me, n, n + 20),
        )
    elif kind == 5:
        cur.execute(
            "UPDATE post SET author = %s WHERE writer = %s AND n BETWEEN %s AND %s", (_author(rnd), me, n, n + 10)
        )
    else:
        cur.execute("DELETE FROM post WHERE writer = %s AND n BETWEEN %s AND %s", (me, n, n + 15))


def _writer(dsn: str, me: int, stop: threading.Event, stats: dict, errors: list[str]) -> None:
    rnd = random.Random(me)
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                table = rnd.choice(["follow", "post"])
                statement = _follow_statement if table == "follow" else _post_statement
                rollback = rnd.random() < 0.1
                try:
                    with conn.transaction() as tx, conn.cursor() as cur:
                        for _ in range(rnd.randint(1, 4)):
                            statement(cur, rnd, me)
                        if rollback:
                            raise psycopg.Rollback(tx)
                    stats["rolled back" if rollback else "committed"] += 1
                except psycopg.errors.UniqueViolation:
                    stats["unique violations"] += 1
                if me == 0 and stats["committed"] % 400 == 399:
                    # TRUNCATE, as the application may: the counts go to 0
                    conn.execute("TRUNCATE follow")
                    stats["truncates"] += 1
    except Exception:
        errors.append(traceback.format_exc())


def _compactor(dsn: str, stop: threading.Event, errors: list[str], folds: list[int]) -> None:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("CALL tally.compact(20000)")
                folds.append(1)
                time.sleep(0.05)
    except Exception:
        errors.append(traceback.format_exc())


def _seed(conn: psycopg.Connection) -> None:
    rnd = random.Random(99)
    with conn.cursor() as cur:
        for me in range(WRITERS):
            for _ in range(30):
                _follow_statement(cur, rnd, me)
                _post_statement(cur, rnd, me)


def _check(conn: psycopg.Connection, when: str, only: list[str] | None = None) -> int:
    """Every key of every counter against its table; every hour and day
    bucket of the post counters against the grouped rows. Returns the
    number of values compared."""
    compared = 0
    truths = {
        "followers": f"SELECT subject::text, count(*) FROM follow WHERE {FOLLOW_SQL} GROUP BY 1",
        "posts": f"SELECT author, count(*) FROM post WHERE {POST_SQL} GROUP BY 1",
        "credits": f"SELECT author, sum(credits) FROM post WHERE {POST_SQL} GROUP BY 1 HAVING sum(credits) IS NOT NULL",
        "big_credits": "SELECT author, count(*) FROM post WHERE author <> '' AND credits > 5 GROUP BY 1",
    }
    for counter, query in truths.items():
        if only is not None and counter not in only:
            continue
        truth = dict(conn.execute(query).fetchall())
        keys = sorted(
            set(truth)
            | {
                k
                for (k,) in conn.execute(
                    "SELECT t.key FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id"
                    " WHERE c.name = %s UNION SELECT d.key FROM tally.delta AS d JOIN tally.counters AS c"
                    " ON c.id = d.counter_id WHERE c.name = %s",
                    (counter, counter),
                )
            }
        )
        got = dict(conn.execute("SELECT * FROM tally.counter_values(%s, %s)", (counter, keys)).fetchall())
        wrong = {k: (got[k], truth.get(k, 0)) for k in keys if got[k] != truth.get(k, 0)}
        assert not wrong, (
            f"{when}: {counter}: (counter, table) differ for {len(wrong)} keys: {list(wrong.items())[:10]}"
        )
        compared += len(keys)
    for counter, amount in (("posts", "count(*)"), ("credits", "coalesce(sum(credits), 0)")):
        if only is not None and counter not in only:
            continue
        for g in ("hour", "day"):
            truth = {
                (a, b): n
                for a, b, n in conn.execute(
                    f"SELECT author, date_trunc(%s, created_at, 'UTC'), {amount} FROM post WHERE {POST_SQL}"
                    " GROUP BY 1, 2",
                    (g,),
                )
            }
            got = {}
            for (author,) in conn.execute(f"SELECT DISTINCT author FROM post WHERE {POST_SQL}").fetchall():
                for bucket, value in conn.execute(
                    "SELECT bucket, value FROM tally.counter_series(%s, %s, %s, now() - interval '5 days',"
                    " now() + interval '1 hour')",
                    (counter, author, g),
                ):
                    if value:
                        got[(author, bucket)] = value
            truth = {k: v for k, v in truth.items() if v}
            assert got == truth, (
                f"{when}: {counter} by {g}: buckets differ: {sorted(set(got.items()) ^ set(truth.items()))[:10]}"
            )
            compared += len(truth)
    return compared


def test_tracked_tables_exact_under_every_statement_kind(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute(SCHEMA)
    conn.execute("SELECT tally.create_counter('followers', p_durable => true)")
    conn.execute("SELECT tally.create_counter('posts')")
    conn.execute("SELECT tally.create_counter('credits', '{hour,day}')")
    conn.execute("SELECT tally.create_counter('big_credits')")
    keep_everything(conn, ["followers", "posts"])
    _seed(conn)
    deadlocks_before = workers.deadlocks(conn)

    stop = threading.Event()
    stats: dict = dict.fromkeys(["committed", "rolled back", "unique violations", "truncates"], 0)
    errors: list[str] = []
    folds: list[int] = []
    threads = [threading.Thread(target=_writer, args=(dsn, me, stop, stats, errors)) for me in range(WRITERS)]
    threads += [threading.Thread(target=_compactor, args=(dsn, stop, errors, folds)) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(2)
        with psycopg.connect(dsn, autocommit=True) as admin, psycopg.connect(dsn, autocommit=True) as snap:
            snap.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            # online, in two steps, with a second of writes between them:
            # those changes are both counted by the triggers and in the rows
            # the backfill sees, and must count once
            assert admin.execute("SELECT tally.track_table('followers', 'follow', 'subject', p_online => true)")
            time.sleep(1)
            (counted,) = admin.execute("SELECT tally.backfill_tracked('followers')").fetchone()
            assert counted is not None and counted >= 0
            # one snapshot sees the tables and tally in step: exact mid-load
            with snap.transaction():
                _check(snap, "right after the online backfill", ["followers"])
            # in one transaction: the writers wait for the scan
            with admin.transaction():
                admin.execute(
                    "SELECT tally.track_table('posts', 'post', 'author', 'created_at',"
                    " p_where => 'visible AND NOT deleted')"
                )
                admin.execute(
                    "SELECT tally.track_table('credits', 'post', 'author', 'created_at', 'credits',"
                    " 'visible AND NOT deleted')"
                )
            # and by the procedure doing both steps
            (counted,) = admin.execute(
                "CALL tally.track_table_online('big_credits', 'post', 'author', p_where => 'credits > 5',"
                " p_counted => NULL)"
            ).fetchone()
            assert counted is not None and counted >= 0
            for _ in range(5):
                with snap.transaction():
                    _check(snap, "under load")
                time.sleep(4)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not errors, errors[0]
    assert stats["committed"] > 1_000 and stats["rolled back"] > 100 and stats["truncates"] >= 1, stats
    assert folds, "the compactors never folded"

    compared = _check(conn, "before the final fold")
    conn.execute("CALL tally.compact()")
    assert conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0
    assert _check(conn, "after the final fold") == compared
    assert compared > 500
    assert workers.deadlocks(conn) == deadlocks_before
    assert conn.execute("SELECT count(*) FROM tally.fold_runs WHERE outcome <> 'ok'").fetchone()[0] == 0
    assert conn.execute("SELECT array_agg(state) FROM tally.tracked_tables").fetchone()[0] == ["active"] * 4
