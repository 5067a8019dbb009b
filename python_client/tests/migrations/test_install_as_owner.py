"""The README's install section, as written: a superuser runs the migrations
(PL/Python is an untrusted language; extensions and roles); afterwards the
database's owner, a role that is no superuser, granted tally_admin, runs
tally: counters, increments, the compactor, maintenance, a source of truth,
drift checks, and the CLI. A migration run as that owner is refused with a
message that says why and what to do."""

from __future__ import annotations

import subprocess
import uuid

import psycopg
from conftest import CLUSTER, REPO, alembic
from psycopg.conninfo import make_conninfo


def test_a_superuser_migrates_then_the_database_owner_runs_tally(admin_dsn: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    owner, db = f"tally_owner_{suffix}", f"tally_owned_{suffix}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {owner} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
        admin.execute(f"CREATE DATABASE {db} OWNER {owner}")
    as_owner = make_conninfo(**{**CLUSTER, "dbname": db, "user": owner})
    as_super = make_conninfo(**{**CLUSTER, "dbname": db})
    try:
        # the owner cannot migrate, and is told why
        refused = subprocess.run(
            [str(REPO / ".venv" / "bin" / "alembic"), "-c", str(REPO / "alembic.ini"), "upgrade", "head"],
            env={"TALLY_DSN": as_owner, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
        )
        assert refused.returncode != 0
        assert f"role {owner} is not a superuser" in refused.stderr
        assert f"GRANT tally_admin TO {owner}" in refused.stderr
        with psycopg.connect(as_super, autocommit=True) as c:
            assert c.execute("SELECT to_regnamespace('tally') IS NULL").fetchone()[0], "nothing was installed"

        # what the README says a superuser runs
        alembic(as_super, "upgrade", "head")
        with psycopg.connect(as_super, autocommit=True) as c:
            c.execute(f"GRANT tally_admin TO {owner}")
            c.execute("CREATE TABLE public.follow (subject text NOT NULL, follower text NOT NULL)")
            c.execute(f"ALTER TABLE public.follow OWNER TO {owner}")

        # and everything the owner runs afterwards
        with psycopg.connect(as_owner, autocommit=True) as c:
            assert not c.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
            c.execute("SELECT tally.create_counter('followers', '{day}', p_durable => true)")
            c.execute("INSERT INTO public.follow VALUES ('alice', 'bob'), ('alice', 'carol')")
            c.execute("SELECT tally.increment_counters('{followers,followers}', '{alice,alice}', '{1,1}')")
            c.execute("CALL tally.compact()")
            assert [s for s, _ in c.execute("SELECT * FROM tally.maintain()").fetchall() if s == "failed"] == []
            assert c.execute("SELECT tally.counter_value('followers', 'alice')").fetchone()[0] == 2
            c.execute("SELECT tally.set_source('followers', 'SELECT count(*) FROM public.follow WHERE subject = $1')")
            assert c.execute("SELECT * FROM tally.check_drift('followers', 10, '{alice}')").fetchall() == []
            assert (
                c.execute(
                    "SELECT p.proowner::regrole::text FROM pg_proc AS p"
                    " WHERE p.pronamespace = 'tally'::regnamespace AND p.proname LIKE 'source\\_%'"
                ).fetchone()[0]
                == owner
            )
            assert dict(c.execute('SELECT "check", status FROM tally.health').fetchall())["folds"] == "ok"
        for args in (["status"], ["metrics"], ["compact"]):
            done = subprocess.run(
                [str(REPO / ".venv" / "bin" / "tally"), "--dsn", as_owner, *args], capture_output=True, text=True
            )
            assert done.returncode == 0, (args, done.stderr)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            admin.execute(f"DROP ROLE IF EXISTS {owner}")
