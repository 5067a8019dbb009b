"""A downgrade drops only the roles tally created. Roles are cluster-wide and
every other tally database of the test cluster holds grants to them, so
this runs in a cluster of its own (initdb'd for the test, socket only, in a
directory of its own): there, a role the downgrade wrongly dropped would
really be gone."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import CLUSTER, alembic
from psycopg.conninfo import make_conninfo

PGBIN = "/usr/lib/postgresql/15/bin"
ROLES = ("tally_admin", "tally_reader", "tally_writer")


def as_postgres(*cmd: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *cmd],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def own_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL 15 cluster; yields the admin DSN of its
    `postgres` database. No TCP: its socket lives in its own directory, so
    the port number may be the test cluster's."""
    base = Path(tempfile.mkdtemp(prefix="tally-roles-", dir="/var/tmp"))
    shutil.chown(base, "postgres")
    data, run = base / "data", base / "run"
    as_postgres("mkdir", str(data), str(run))
    as_postgres(f"{PGBIN}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
    port = str(CLUSTER.get("port", "54329"))
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(f"listen_addresses = ''\nunix_socket_directories = '{run}'\nport = {port}\n")
    as_postgres(f"{PGBIN}/pg_ctl", "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60", "start")
    try:
        yield make_conninfo(host=str(run), port=port, user="postgres", dbname="postgres")
    finally:
        as_postgres(f"{PGBIN}/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base)


def tally_roles(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY (%s)", (list(ROLES),))}


def test_downgrade_keeps_an_operators_roles_and_drops_the_one_it_created(own_cluster: str) -> None:
    app = make_conninfo(own_cluster, dbname="app")
    with psycopg.connect(own_cluster, autocommit=True) as admin:
        admin.execute("CREATE DATABASE app")
        # The operator's own tally_writer (a comment and a member: nothing
        # would stop a DROP ROLE) and tally_reader (also a grant on a table
        # of theirs), made before tally is installed.
        for role in ("tally_writer", "tally_reader"):
            admin.execute(f"CREATE ROLE {role} NOLOGIN")
            admin.execute(f"COMMENT ON ROLE {role} IS 'made by the operator'")
        admin.execute("CREATE ROLE app_api LOGIN")
        admin.execute("GRANT tally_writer, tally_reader TO app_api")
        assert tally_roles(admin) == {"tally_writer", "tally_reader"}
    with psycopg.connect(app, autocommit=True) as c:
        c.execute("CREATE TABLE public.reports (id int)")
        c.execute("GRANT SELECT ON public.reports TO tally_reader")

    for _ in range(2):  # installed and removed twice: the same each time
        alembic(app, "upgrade", "head")
        with psycopg.connect(app, autocommit=True) as c:
            assert tally_roles(c) == set(ROLES)
            sql = "SELECT has_function_privilege(%s, 'tally.increment_counter(text, text, bigint, timestamptz, text)'"
            assert c.execute(sql + ", 'EXECUTE')", ("tally_writer",)).fetchone()[0] is True
            c.execute("SELECT tally.create_counter('r')")
            c.execute("SELECT tally.increment_counter('r', 'k', 3)")

        alembic(app, "downgrade", "base")
        with psycopg.connect(app, autocommit=True) as c:
            assert c.execute("SELECT to_regnamespace('tally') IS NULL").fetchone()[0]
            # the one tally created is gone; the operator's two stay as they were
            assert tally_roles(c) == {"tally_writer", "tally_reader"}
            for role in ("tally_writer", "tally_reader"):
                comment = c.execute("SELECT shobj_description(%s::regrole, 'pg_authid')", (role,)).fetchone()[0]
                assert comment == "made by the operator"
                assert c.execute("SELECT pg_has_role('app_api', %s, 'MEMBER')", (role,)).fetchone()[0] is True
            grant = "SELECT has_table_privilege('tally_reader', 'public.reports', 'SELECT')"
            assert c.execute(grant).fetchone()[0] is True
