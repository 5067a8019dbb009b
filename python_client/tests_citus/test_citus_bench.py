"""`make bench-citus` in small: scripts/citus.sh fresh-db with a worker
count, and `python -m bench.citus` against a one-worker database, a two-worker
database and a single-node tally (here: tally migrated with
distributed=off on the coordinator), every case exact, its tables written."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

REPO = Path(__file__).resolve().parents[2]
CITUS_SH = str(REPO / "scripts" / "citus.sh")


def _env(citus_dsn: str) -> dict[str, str]:
    """scripts/citus.sh for the cluster of citus_dsn (its coordinator's port)."""
    return {**os.environ, "CITUS_PORT": str(conninfo_to_dict(citus_dsn)["port"])}


def _fresh(citus_dsn: str, name: str, *workers: str) -> str:
    r = subprocess.run(
        [CITUS_SH, "fresh-db", name, *workers], env=_env(citus_dsn), capture_output=True, text=True, check=True
    )
    return r.stdout.strip().splitlines()[-1]


def _workers(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute("SELECT count(*) FROM pg_dist_node WHERE groupid <> 0").fetchone()[0]


def _migrate(dsn: str, *x: str) -> None:
    alembic = [str(REPO / ".venv" / "bin" / "alembic"), "-c", str(REPO / "alembic.ini"), *x, "upgrade", "head"]
    subprocess.run(alembic, env={**os.environ, "TALLY_DSN": dsn}, capture_output=True, check=True)


def _cluster_workers(citus_dsn: str) -> int:
    """Workers the cluster has: 2, or 3 once a test has added worker 3."""
    r = subprocess.run([CITUS_SH, "datadir", "3"], env=_env(citus_dsn), capture_output=True, text=True, check=True)
    return 3 if (Path(r.stdout.strip()) / "PG_VERSION").is_file() else 2


def test_fresh_db_registers_the_workers_asked_for(citus_dsn: str) -> None:
    every = _cluster_workers(citus_dsn)
    assert _workers(_fresh(citus_dsn, "tally_citus_fresh1", "1")) == 1
    assert _workers(_fresh(citus_dsn, "tally_citus_fresh1")) == every
    too_many = str(every + 1)
    r = subprocess.run(
        [CITUS_SH, "fresh-db", "tally_citus_fresh1", too_many], env=_env(citus_dsn), capture_output=True, text=True
    )
    assert r.returncode == 2 and f"{too_many} workers: this cluster has 1 to {every}" in r.stderr, r.stderr


def test_bench_citus_small_runs_every_case_exactly(citus_dsn: str, tmp_path: Path) -> None:
    two = _fresh(citus_dsn, "tally_citus_bench2", "2")
    _migrate(two)
    one = _fresh(citus_dsn, "tally_citus_bench1", "1")
    _migrate(one)
    plain = _fresh(citus_dsn, "tally_citus_bench0")
    _migrate(plain, "-x", "distributed=off")
    bench = [str(REPO / ".venv" / "bin" / "python"), "-m", "bench.citus"]
    args = ["--plain", plain, "--citus1", one, "--citus2", two, "--seconds", "2", "--clients", "2"]
    r = subprocess.run(
        [*bench, *args, "--live", "2000", "--backfill", "1000", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "citus.json").read_text())
    assert res["exact"] is True
    assert [(t["key"], t["nodes"]) for t in res["targets"]] == [
        ("single", ["node"]),
        ("citus1", ["coordinator", "worker1"]),
        ("citus2", ["coordinator", "worker1", "worker2"]),
    ]
    assert list(res["ingest"]) == [
        "many_keys",
        "hot_key",
        "raw_insert",
        "batch",
        "batch100",
        "worker_many_keys",
        "worker_hot_key",
        "worker_batch100",
    ]
    for rows in res["ingest"].values():
        for row in rows.values():
            assert row["exact"] and row["increments"] > 0 and row["stored"] == row["increments"], row
    # through the key's worker, the coordinator does (almost) nothing
    for case in ("worker_many_keys", "worker_hot_key", "worker_batch100"):
        for key in ("citus1", "citus2"):
            row = res["ingest"][case][key]
            assert row["via"] == "worker" and row["cpu_s"]["worker1"] > 5 * row["cpu_s"]["coordinator"], row
    assert {case: [row["deltas"] for row in rows.values()] for case, rows in res["fold"].items()} == {
        "live": [2000, 2000, 2000],
        "backfill": [1000, 1000, 1000],
    }
    # the fold ran on the workers: they used CPU, and the coordinator less
    for key in ("citus1", "citus2"):
        cpu = res["fold"]["backfill"][key]["cpu_s"]
        assert sum(v for n, v in cpu.items() if n.startswith("worker")) > cpu["coordinator"], cpu
    assert res["environment"]["shard_count"] > 0 and res["environment"]["citus"].startswith("13")
    text = (tmp_path / "citus.txt").read_text()
    assert "every case exact (stored = committed): yes" in text
    assert "fold live: citus2 / citus1" in text
    with psycopg.connect(plain, autocommit=True) as c:
        assert c.execute("SELECT distributed FROM tally.settings").fetchone()[0] is False
