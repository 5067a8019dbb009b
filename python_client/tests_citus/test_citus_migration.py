"""How the migration chooses distributed mode (migrations/tally_citus.py):
auto distributes exactly when Citus has workers; on insists; off keeps a
plain install; a distributed install refuses to go below 0004, and a later
revision that makes the code again distributes it again, both ways."""

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


HEAD = sorted(p.name[:4] for p in (REPO / "migrations" / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))[-1]


def version(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT version_num FROM tally.alembic_version").fetchone()[0]


def test_a_distributed_install_refuses_to_go_below_0004(citus_dsn: str) -> None:
    assert distributed(citus_dsn) is True
    refused = alembic(citus_dsn, "downgrade", "0003")
    assert refused.returncode != 0
    assert "a distributed install cannot go below 0004" in refused.stderr
    assert version(citus_dsn) == HEAD  # all of it rolled back


def routines(dsn: str) -> list[tuple]:
    """tally's functions as Citus knows them: distributed or not, and the
    argument a delegated one is routed by."""
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            """
            SELECT p.oid::regprocedure::text, o.objid IS NOT NULL, o.distribution_argument_index
            FROM pg_proc AS p
            LEFT JOIN pg_dist_object AS o ON o.classid = 'pg_proc'::regclass AND o.objid = p.oid
            WHERE p.pronamespace = 'tally'::regnamespace
            ORDER BY 1
            """
        ).fetchall()


@pytest.mark.skipif(HEAD == "0004", reason="no revision after 0004 makes the code again")
def test_revisions_after_0004_distribute_the_code_again_both_ways(citus_dsn: str, name: str) -> None:
    """Down to 0004 and up to the head again: each time the code is made
    again, and each time it is on every node and delegated as before, and
    counts go on exactly."""
    before = routines(citus_dsn)
    assert ("tally.increment_counter(text,text,bigint,timestamp with time zone,text)", True, 1) in before
    with psycopg.connect(citus_dsn, autocommit=True) as conn:
        conn.execute("SELECT tally.create_counter(%s)", (name,))
        for i in range(50):
            conn.execute("SELECT tally.increment_counter(%s, %s, %s)", (name, f"k{i % 10}", i))
    try:
        down = alembic(citus_dsn, "downgrade", "0004")
        assert down.returncode == 0, down.stderr
        assert version(citus_dsn) == "0004"
        at_0004 = routines(citus_dsn)
        assert [r for r in at_0004 if r[1]] != []
        assert {r[0]: r[2] for r in at_0004 if r[2] is not None} == {r[0]: r[2] for r in before if r[2] is not None}
    finally:
        up = alembic(citus_dsn, "upgrade", "head")
        assert up.returncode == 0, up.stderr
    assert version(citus_dsn) == HEAD
    assert routines(citus_dsn) == before
    with psycopg.connect(citus_dsn, autocommit=True) as conn:
        for i in range(50, 100):
            conn.execute("SELECT tally.increment_counter(%s, %s, %s)", (name, f"k{i % 10}", i))
        conn.execute("CALL tally.compact()")
        values = {
            k: v
            for k, v in conn.execute(
                "SELECT key, value FROM tally.totals t JOIN tally.counters c ON c.id = t.counter_id WHERE c.name = %s",
                (name,),
            ).fetchall()
        }
        # the truth: key k{j} got every i with i % 10 == j
        assert values == {f"k{j}": sum(i for i in range(100) if i % 10 == j) for j in range(10)}
        assert conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0
