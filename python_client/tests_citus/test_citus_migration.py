"""How the migration chooses distributed mode (migrations/tally_citus.py):
auto distributes exactly when Citus has workers; on insists; off keeps a
plain install; a distributed install refuses to go below 0004."""

from __future__ import annotations

import os
import subprocess

import psycopg
import pytest
from conftest import REPO
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def alembic(dsn: str, *args: str, distributed: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TALLY_DSN": dsn}
    env.pop("TALLY_DISTRIBUTED", None)
    if distributed is not None:
        env["TALLY_DISTRIBUTED"] = distributed
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "alembic"), "-c", str(REPO / "alembic.ini"), *args],
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.fixture
def coordinator_db(citus_dsn: str):
    """A database on the coordinator alone (no worker knows it)."""
    params = conninfo_to_dict(citus_dsn)
    admin = make_conninfo(**{**params, "dbname": "postgres"})
    name = "tally_mode_test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    yield make_conninfo(**{**params, "dbname": name})
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def distributed(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT distributed FROM tally.settings").fetchone()[0]


def test_on_without_citus_is_refused_and_auto_installs_plainly(coordinator_db: str) -> None:
    refused = alembic(coordinator_db, "upgrade", "head", distributed="on")
    assert refused.returncode != 0
    assert "distributed=on, but the citus extension is not installed" in refused.stderr
    with psycopg.connect(coordinator_db) as conn:
        assert conn.execute("SELECT to_regclass('tally.counters')").fetchone()[0] is None  # nothing left behind
    assert alembic(coordinator_db, "upgrade", "head").returncode == 0
    assert distributed(coordinator_db) is False


def test_citus_without_workers_is_not_distributed_and_on_says_why(coordinator_db: str) -> None:
    with psycopg.connect(coordinator_db, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION citus")
    refused = alembic(coordinator_db, "upgrade", "head", distributed="on")
    assert refused.returncode != 0
    assert "Citus has no active worker" in refused.stderr
    assert alembic(coordinator_db, "upgrade", "head", distributed="auto").returncode == 0
    assert distributed(coordinator_db) is False


def test_a_bad_setting_is_refused(coordinator_db: str) -> None:
    refused = alembic(coordinator_db, "upgrade", "head", distributed="maybe")
    assert refused.returncode != 0
    assert "distributed='maybe' is not one of on, off, auto" in refused.stderr


def test_a_distributed_install_refuses_to_go_below_0004(citus_dsn: str) -> None:
    assert distributed(citus_dsn) is True
    refused = alembic(citus_dsn, "downgrade", "0003")
    assert refused.returncode != 0
    assert "a distributed install cannot go below 0004" in refused.stderr
    with psycopg.connect(citus_dsn) as conn:
        assert conn.execute("SELECT version_num FROM tally.alembic_version").fetchone() == ("0004",)
