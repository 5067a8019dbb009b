"""Fixtures of the Citus suite: tally distributed on the throwaway Citus
cluster (`make test-citus` starts it, makes a fresh database on every node
and passes its coordinator DSN in TALLY_CITUS_DSN); migrated once per run.
Tests share that database: each makes counters of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[2]
# The single-node suite's ground truth and worker processes, reused.
sys.path.insert(0, str(REPO / "python_client" / "tests"))


@pytest.fixture(scope="session")
def citus_dsn() -> str:
    dsn = os.environ.get("TALLY_CITUS_DSN")
    if not dsn:
        pytest.fail("TALLY_CITUS_DSN is not set: run the Citus suite with `make test-citus`")
    subprocess.run(
        [str(REPO / ".venv" / "bin" / "alembic"), "-c", str(REPO / "alembic.ini"), "upgrade", "head"],
        check=True,
        env={**os.environ, "TALLY_DSN": dsn},
        capture_output=True,
    )
    return dsn


@pytest.fixture
def cconn(citus_dsn: str):
    with psycopg.connect(citus_dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def name() -> str:
    """A counter name no other test uses."""
    return "c_" + uuid.uuid4().hex[:10]


@pytest.fixture
def node_dsns(citus_dsn: str) -> list[str]:
    """The coordinator's DSN, then each active worker's, for the same
    database (every node of the test cluster runs on this machine: the
    coordinator's DSN with the worker's port)."""
    with psycopg.connect(citus_dsn, autocommit=True) as c:
        rows = c.execute(
            "SELECT nodeport FROM pg_dist_node WHERE groupid <> 0 AND isactive ORDER BY nodeport"
        ).fetchall()
    return [citus_dsn] + [psycopg.conninfo.make_conninfo(citus_dsn, port=str(port)) for (port,) in rows]


def move_shard(cconn: psycopg.Connection, shard: int, frm: tuple[str, int], to: tuple[str, int]) -> float:
    """Move a Citus shard's placement (block_writes); the seconds the move
    itself took. A placement an earlier move left on the target must be
    gone first (Citus drops it later, once no session holds it; else the
    move fails: "orphaned shard ... could not be cleaned up"): cleaned up
    here, waiting up to 60 s."""
    deadline = time.monotonic() + 60
    while True:
        cconn.execute("CALL citus_cleanup_orphaned_resources()")
        (left,) = cconn.execute(
            "SELECT count(*) FROM pg_dist_cleanup WHERE object_name LIKE %s", (f"%\\_{shard}",)
        ).fetchone()
        if left == 0:
            break
        assert time.monotonic() < deadline, f"shard {shard}: {left} orphaned placements not cleaned up in 60 s"
        time.sleep(0.5)
    t0 = time.monotonic()
    cconn.execute(
        "SELECT citus_move_shard_placement(%s, %s, %s, %s, %s, shard_transfer_mode => 'block_writes')",
        (shard, frm[0], frm[1], to[0], to[1]),
    )
    return time.monotonic() - t0
