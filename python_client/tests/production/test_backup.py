"""Backups: pg_dump under load, pg_restore into a new database.

The suite starts a server of its own with pg_cron serving the source
database (cron.database_name), as `make db` does, so the dump holds pg_cron
and its jobs. It dumps while writers and a compactor run, at a snapshot the
test exported itself and read every value at; it restores with the commands
of the README ("Backups, restores and replicas"), which leave pg_cron out
and exit 0; every value in the restored database equals the source's at
that snapshot (unfolded fast deltas included: a dump holds UNLOGGED data);
and the restored tally works: increments, an event-id replay from before
the dump, CALL tally.compact(), tally.maintain().
"""

from __future__ import annotations

import random
import shutil
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from topology import PGBIN, Server, as_postgres, workdir

DB = "tally"
# Entries of a dump's list that only the database pg_cron serves can restore.
CRON_ENTRIES = (" EXTENSION - pg_cron ", " COMMENT - EXTENSION pg_cron ", " TABLE DATA cron ", " SEQUENCE SET cron ")


@pytest.fixture(scope="module")
def server():
    base = workdir("tally-backup-")
    s = Server(base, "main").initdb({"shared_preload_libraries": "'pg_cron'", "cron.database_name": f"'{DB}'"})
    s.start()
    try:
        s.create_database(DB)
        s.migrate(DB)
        yield s
    finally:
        s.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def _load(dsn: str, stop: threading.Event, seed: int, errors: list[str]) -> None:
    rnd = random.Random(seed)
    n = 0
    try:
        with psycopg.connect(dsn, autocommit=True) as c:
            while not stop.is_set():
                n += 1
                counter = rnd.choice(["views", "follows"])
                at = datetime.now(UTC) - timedelta(hours=rnd.uniform(0, 48))
                if rnd.random() < 0.7:
                    c.execute(
                        "SELECT tally.increment_counter(%s::text, %s::text, %s::bigint, %s::timestamptz, %s::text)",
                        (counter, str(rnd.randint(1, 50)), rnd.choice([1, 2, -1]), at,
                         f"ev-{seed}-{n}" if rnd.random() < 0.2 else None),
                    )  # fmt: skip
                else:
                    keys = [str(rnd.randint(1, 50)) for _ in range(25)]
                    c.execute(
                        "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
                        ([counter] * 25, keys, [1] * 25, [at] * 25),
                    )
    except Exception as exc:
        errors.append(repr(exc))


def _compact(dsn: str, stop: threading.Event, errors: list[str]) -> None:
    try:
        with psycopg.connect(dsn, autocommit=True) as c:
            while not stop.is_set():
                c.execute("CALL tally.compact()")
                time.sleep(0.3)
    except Exception as exc:
        errors.append(repr(exc))


def values(conn: psycopg.Connection) -> dict[tuple[str, str], int]:
    return {
        (c, k): v
        for c, k, v in conn.execute(
            "SELECT c.name, k.n::text, tally.counter_value(c.name, k.n::text)"
            " FROM tally.counters AS c CROSS JOIN generate_series(1, 50) AS k (n) ORDER BY 1, 2"
        )
    }


def series(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute(
        "SELECT c.name, k.n, s.bucket, s.value FROM tally.counters AS c CROSS JOIN generate_series(1, 50) AS k (n)"
        " CROSS JOIN LATERAL tally.counter_series(c.name, k.n::text, 'hour', now() - interval '3 days', now()) AS s"
        " ORDER BY 1, 2, 3"
    ).fetchall()


def test_a_dump_under_load_restores_exactly_and_works(server: Server) -> None:
    src = server.dsn(DB)
    with server.connect(DB) as c:
        c.execute("SELECT tally.create_counter('views')")
        c.execute("SELECT tally.create_counter('follows', p_durable => true)")
        c.execute("SELECT tally.increment_counter('follows', '1', 1, now(), 'before-the-dump')")
        c.execute("SELECT * FROM tally.schedule_compactor()")
        # a tracked table: its registration names the table, which a
        # restore gives a new OID
        c.execute("CREATE TABLE follow (id bigserial PRIMARY KEY, subject integer)")
        c.execute("INSERT INTO follow (subject) SELECT g % 50 + 1 FROM generate_series(1, 500) AS g")
        c.execute("SELECT tally.create_counter('followers')")
        c.execute("SELECT tally.track_table('followers', 'follow', 'subject')")
        c.execute("INSERT INTO follow (subject) VALUES (1), (2)")
    stop, errors = threading.Event(), []
    threads = [threading.Thread(target=_load, args=(src, stop, s, errors)) for s in range(3)]
    threads.append(threading.Thread(target=_compact, args=(src, stop, errors)))
    for t in threads:
        t.start()
    time.sleep(2)
    dump = server.base / "tally.dump"
    # The dump's snapshot, exported by the test, which reads every value at it.
    with psycopg.connect(src) as snap:
        snap.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        (snapshot,) = snap.execute("SELECT pg_export_snapshot()").fetchone()
        at_dump = values(snap)
        series_at_dump = series(snap)
        (pending_at_dump,) = snap.execute("SELECT count(*) FROM tally.delta").fetchone()
        dumped = as_postgres(str(PGBIN / "pg_dump"), "-Fc", f"--snapshot={snapshot}", "-f", str(dump), src, check=False)
        snap.rollback()
    time.sleep(1)  # the load goes on after the dump
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert dumped.returncode == 0, dumped.stderr
    assert pending_at_dump > 0  # the dump holds unfolded deltas, fast ones too

    # Restore as the README says: the list without pg_cron's entries.
    restored = server.create_database("tally_restored")
    listing = as_postgres(str(PGBIN / "pg_restore"), "-l", str(dump)).stdout
    kept = [line for line in listing.splitlines() if not any(e in line for e in CRON_ENTRIES)]
    assert len(kept) < len(listing.splitlines())  # pg_cron was in the dump
    (server.base / "tally.list").write_text("\n".join(kept) + "\n")
    out = as_postgres(
        str(PGBIN / "pg_restore"), "--exit-on-error", "-d", restored, "-L", str(server.base / "tally.list"), str(dump),
        check=False,
    )  # fmt: skip
    assert out.returncode == 0 and out.stderr == "", out.stderr

    with psycopg.connect(restored, autocommit=True) as r:
        assert values(r) == at_dump
        assert series(r) == series_at_dump
        assert r.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == pending_at_dump
        # and it works
        assert (
            r.execute("SELECT tally.increment_counter('follows', '1', 1, now(), 'before-the-dump')").fetchone()[0]
            is False
        )
        assert r.execute("SELECT tally.increment_counter('views', '1', 1000)").fetchone()[0] is True
        r.execute("CALL tally.compact()")
        assert r.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0
        assert values(r)[("views", "1")] == at_dump[("views", "1")] + 1000
        failed = [row for row in r.execute("SELECT step, detail FROM tally.maintain()") if row[0] == "failed"]
        assert failed == []
        # pg_cron serves the source database only: scheduling says what to do instead
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="pg_cron is not installed"):
            r.execute("SELECT * FROM tally.schedule_compactor()")
        health = dict(r.execute('SELECT "check", status FROM tally.health').fetchall())
        assert health["crash"] == "ok" and health["folds"] == "ok", health
        # the tracked table is tracked in the restored database too
        truth = dict(r.execute("SELECT subject::text, count(*) FROM follow GROUP BY 1"))
        assert {k: v for (c, k), v in values(r).items() if c == "followers"} == truth
        assert r.execute("SELECT table_name = 'public.follow'::regclass FROM tally.tracked_tables").fetchone() == (
            True,
        )
        r.execute("INSERT INTO follow (subject) VALUES (1)")
        r.execute("ALTER TABLE follow RENAME COLUMN subject TO subject_id")
        r.execute("DELETE FROM follow WHERE subject_id = 2")
        assert r.execute(
            "SELECT tally.counter_value('followers', '1'), tally.counter_value('followers', '2')"
        ).fetchone() == (
            truth["1"] + 1,
            0,
        )
        r.execute("SELECT tally.drop_counter('followers')")
        assert r.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'follow'::regclass").fetchone() == (0,)
