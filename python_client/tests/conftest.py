"""Fixtures: a real PostgreSQL 15 cluster (started by `make db`), a migrated
template database built once per run with pytest-postgresql, and a fresh
copy of it for each test."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from pytest_postgresql import factories

REPO = Path(__file__).resolve().parents[2]


def _cluster() -> dict[str, str]:
    dsn = (
        os.environ.get("TALLY_ADMIN_DSN")
        or subprocess.check_output([str(REPO / "scripts" / "db.sh"), "dsn", "postgres"], text=True).strip()
    )
    return conninfo_to_dict(dsn)


CLUSTER = _cluster()


def alembic(dsn: str, *args: str) -> None:
    subprocess.run(
        [str(REPO / ".venv" / "bin" / "alembic"), "-c", str(REPO / "alembic.ini"), *args],
        check=True,
        env={**os.environ, "TALLY_DSN": dsn},
        capture_output=True,
    )


def migrate_loader(**kw) -> None:
    """pytest-postgresql loader: `alembic upgrade head` into the template database."""
    keys = ("host", "port", "user", "dbname", "password")
    alembic(make_conninfo(**{k: kw[k] for k in keys if kw.get(k) is not None}), "upgrade", "head")


tally_server = factories.postgresql_noproc(
    host=CLUSTER.get("host"),
    port=CLUSTER.get("port", "54329"),
    user=CLUSTER.get("user", "postgres"),
    dbname="tally_pytest",
    load=[migrate_loader],
)
tally_conn = factories.postgresql("tally_server")


@pytest.fixture
def dsn(tally_conn: psycopg.Connection) -> str:
    """Connection string of this test's fresh, migrated database."""
    tally_conn.commit()
    return tally_conn.info.dsn


@pytest.fixture
def admin_dsn() -> str:
    return make_conninfo(**CLUSTER)


@pytest.fixture
def fresh_db(admin_dsn: str):
    """An empty database (nothing migrated), dropped after the test: for
    tests that run the migrations themselves."""
    name = "tally_migrate_roundtrip"
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {name}")
    yield make_conninfo(**{**conninfo_to_dict(admin_dsn), "dbname": name})
    with psycopg.connect(admin_dsn, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def conn(dsn: str):
    with psycopg.connect(dsn, autocommit=True) as c:
        yield c


def rearm_crash_markers(except_dsn: str) -> None:
    """After a test crashed the cluster on purpose: crash recovery empties
    UNLOGGED tables in every database, including the template the other
    tests are copied from, whose tally.crash_marker would then make every
    later test's database report a crash it never had. Put the marker back
    everywhere but in the crashed test's own database."""
    own = conninfo_to_dict(except_dsn)["dbname"]
    with psycopg.connect(make_conninfo(**CLUSTER), autocommit=True) as admin:
        names = [
            r[0] for r in admin.execute("SELECT datname FROM pg_database WHERE datallowconn AND datname <> %s", (own,))
        ]
    for name in names:
        with psycopg.connect(make_conninfo(**{**CLUSTER, "dbname": name}), autocommit=True) as c:
            if c.execute("SELECT to_regclass('tally.crash_marker') IS NOT NULL").fetchone()[0]:
                c.execute("INSERT INTO tally.crash_marker DEFAULT VALUES ON CONFLICT DO NOTHING")
