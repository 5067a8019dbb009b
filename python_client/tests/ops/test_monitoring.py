"""Monitoring with the documented monitoring role: `tally status`,
`tally metrics` and every query of monitoring/postgres_exporter.yaml work
for a login holding only tally_reader. Metrics carry a `database` label and
a `tally_up` gauge that turns 0 (still a 200 from --serve) while the
database is unreachable, and back to 1 when it returns.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from conftest import REPO
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

TALLY = str(REPO / ".venv" / "bin" / "tally")


EXPORTER_YAML = REPO / "monitoring" / "postgres_exporter.yaml"


CHECKS = {"node", "compactor", "lag", "backlog", "folds", "maintenance", "drift", "crash", "quarantine"}


def tally(dsn: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TALLY, "--dsn", dsn, *args], capture_output=True, text=True, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.fixture
def reader_dsn(dsn: str, conn: psycopg.Connection) -> Iterator[str]:
    """A LOGIN role whose only privilege is membership in tally_reader (the
    migration's roles are NOLOGIN); dropped afterwards (roles are cluster-wide)."""
    role = f"tally_monitor_{os.getpid()}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    conn.execute(sql.SQL("GRANT tally_reader TO {}").format(sql.Identifier(role)))
    yield make_conninfo(dsn, user=role)
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
    conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@pytest.fixture
def some_state(conn: psycopg.Connection) -> str:
    """Two counters, a fold, then 3 pending deltas, a drift check, one
    recorded crash reset; returns the database's name."""
    conn.execute("SELECT tally.create_counter('page_views')")
    conn.execute("SELECT tally.create_counter('followers', '{day}', true)")
    conn.execute("SELECT tally.increment_counter('page_views', 'a')")
    conn.execute("CALL tally.compact()")
    conn.execute("SELECT tally.increment_counters('{page_views,page_views,followers}', '{a,b,alice}', '{1,1,1}')")
    conn.execute("SELECT * FROM tally.check_drift('page_views')")
    conn.execute(
        "INSERT INTO tally.crash_resets (server_started_at, lost_since, lost_until, cause)"
        " VALUES (now() - interval '1 minute', now() - interval '2 minutes', now() - interval '1 minute', 'crash')"
    )
    return conn.execute("SELECT current_database()").fetchone()[0]


def test_the_reader_login_may_not_read_the_tables(reader_dsn: str) -> None:
    with psycopg.connect(reader_dsn, autocommit=True) as c:
        for table in ("tally.counters", "tally.delta", "tally.fold_runs", "tally.crash_resets"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(f"SELECT count(*) FROM {table}")


def test_status_as_a_tally_reader_login(reader_dsn: str, some_state: str, conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM tally.crash_resets")  # nothing critical: exit 0
    r = tally(reader_dsn, "status")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    views = next(line.split() for line in lines if line.startswith("page_views"))
    assert views[:4] == ["page_views", "fast", "minute,hour,day,week,month", "2"]
    followers = next(line.split() for line in lines if line.startswith("followers"))
    assert followers[:4] == ["followers", "durable", "day", "1"]
    lag = lines[lines.index("Compactor lag") + 3].split()
    assert lag[:2] == ["3", "2"]  # 3 pending deltas in 2 shards (one fast, one durable)
    assert {line.split()[0] for line in lines[lines.index("Health") + 3 :]} == CHECKS


def test_status_as_a_reader_shows_a_recorded_crash_reset_critical(reader_dsn: str, some_state: str) -> None:
    r = tally(reader_dsn, "status")
    assert r.returncode == 2, r.stdout + r.stderr
    crash = next(line for line in r.stdout.splitlines() if line.startswith("crash"))
    assert "critical" in crash and "crash reset detected at" in crash


def test_metrics_as_a_tally_reader_login(reader_dsn: str, some_state: str) -> None:
    r = tally(reader_dsn, "metrics")
    assert r.returncode == 0, r.stderr
    fam = families(r.stdout)
    database = some_state
    # drifting keys and the largest drift are NULL without a source of truth: no sample
    assert {name for name, f in fam.items() if f.samples} == set(fam) - {
        "tally_drift_drifting_keys",
        "tally_drift_max_abs",
    }
    assert len(fam) == 18
    for f in fam.values():
        for s in f.samples:
            assert s.labels["database"] == database, (f.name, s.labels)
    assert [(s.labels, s.value) for s in fam["tally_up"].samples] == [({"database": database}, 1.0)]
    assert fam["tally_counters"].samples[0].value == 2
    assert fam["tally_crash_resets"].type == "counter"
    assert fam["tally_crash_resets"].samples[0].value == 1
    assert sum(s.value for s in fam["tally_pending_deltas"].samples) == 3
    health = {s.labels["check"]: s.value for s in fam["tally_health_status"].samples}
    assert set(health) == CHECKS and health["crash"] == 2
    assert [s.labels for s in fam["tally_drift_inconsistent_keys"].samples] == [
        {"database": database, "counter": "page_views"}
    ]


def test_every_exporter_query_as_a_tally_reader_login(reader_dsn: str, some_state: str) -> None:
    config = yaml.safe_load(EXPORTER_YAML.read_text())
    assert set(config) == {"tally_lag", "tally_deadlocks", "tally_health", "tally_drift", "tally_crash_resets", "tally"}
    results: dict[str, list[dict[str, object]]] = {}
    with psycopg.connect(reader_dsn, autocommit=True) as c:
        for namespace, spec in config.items():
            cur = c.execute(spec["query"])
            columns = [d.name for d in cur.description]
            metrics = {name: m["usage"] for entry in spec["metrics"] for name, m in entry.items()}
            assert columns == list(metrics), namespace  # every column described, every metric a column
            assert metrics["database"] == "LABEL", namespace
            rows = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
            assert rows, namespace
            for row in rows:
                assert row["database"] == some_state, namespace
                for name, usage in metrics.items():
                    if usage in ("GAUGE", "COUNTER"):
                        assert row[name] is not None, (namespace, name)
            results[namespace] = rows
    assert results["tally_crash_resets"] == [{"database": some_state, "total": 1}]
    assert results["tally"] == [{"database": some_state, "counters": 2, "standby": 0}]
    assert results["tally_lag"][0]["pending_deltas"] == 3
    assert {r["check"] for r in results["tally_health"]} == CHECKS
    assert {r["check"]: r["status"] for r in results["tally_health"]}["crash"] == 2
    assert sorted(r["counter"] for r in results["tally_drift"]) == ["followers", "page_views"]
    assert results["tally_deadlocks"][0]["folds_abandoned"] == 0


def test_metrics_report_tally_up_0_when_the_database_is_unreachable(dsn: str) -> None:
    database = conninfo_to_dict(dsn)["dbname"]
    nowhere = make_conninfo(dsn, host="127.0.0.1", port=str(free_port()))
    r = tally(nowhere, "metrics")
    assert r.returncode == 1
    fam = families(r.stdout)
    assert list(fam) == ["tally_up"]  # no stale or partial figures
    assert [(s.labels, s.value) for s in fam["tally_up"].samples] == [({"database": database}, 0.0)]
    assert r.stderr.startswith("tally: tally_up 0: connection failed:") and r.stderr.count("\n") == 1, r.stderr


def test_metrics_report_tally_up_0_when_a_query_is_refused(dsn: str, conn: psycopg.Connection) -> None:
    """A login without tally_reader: connected, but refused (42501)."""
    role = f"tally_nobody_{os.getpid()}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        r = tally(make_conninfo(dsn, user=role), "metrics")
    finally:
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    assert r.returncode == 1
    assert [(s.name, s.value) for f in families(r.stdout).values() for s in f.samples] == [("tally_up", 0.0)]
    assert r.stderr == "tally: tally_up 0: SQLSTATE 42501: permission denied for schema tally\n"


def pg_ctl(*args: str) -> None:
    datadir = subprocess.check_output([str(REPO / "scripts" / "db.sh"), "datadir"], text=True).strip()
    log = str(Path(datadir).parent / "postgres.log")
    subprocess.run(
        ["runuser", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "-D", datadir, "-l", log, *args],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=15) as resp:
        return resp.status, resp.read().decode()


def test_metrics_server_survives_a_database_that_goes_down_and_comes_back(dsn: str, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    database = conninfo_to_dict(dsn)["dbname"]
    log = tmp_path / "metrics.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [TALLY, "--dsn", dsn, "metrics", "--serve", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                status, body = get(url)
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert status == 200
        fam = families(body)
        assert fam["tally_up"].samples[0].value == 1 and "tally_health_status" in fam

        pg_ctl("stop", "-m", "fast", "-w")
        try:
            for _ in range(2):
                status, body = get(url)
                assert status == 200
                fam = families(body)
                assert list(fam) == ["tally_up"]
                assert [(s.labels, s.value) for s in fam["tally_up"].samples] == [({"database": database}, 0.0)]
            assert proc.poll() is None
        finally:
            pg_ctl("start", "-w", "-t", "120")

        status, body = get(url)
        fam = families(body)
        assert status == 200 and fam["tally_up"].samples[0].value == 1
        assert {s.labels["check"] for s in fam["tally_health_status"].samples} == CHECKS
        assert all(s.labels["database"] == database for f in fam.values() for s in f.samples)

        proc.terminate()
        assert proc.wait(timeout=10) == 0
        text = log.read_text()
        assert re.search(r"WARNING tally.metrics: tally_up 0: connection .*Is the server running", text), text
        assert text.count("tally_up 0:") == 1  # logged when it went down, not at every scrape
        assert "INFO tally.metrics: tally_up 1: the database answers again" in text
        assert "Traceback" not in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_metrics_parse_as_prometheus_text(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('m')")
    conn.execute("SELECT tally.increment_counter('m', 'k')")
    conn.execute("SELECT * FROM tally.check_drift('m')")
    out = subprocess.run(
        [str(REPO / ".venv" / "bin" / "tally"), "--dsn", dsn, "metrics"], check=True, capture_output=True, text=True
    ).stdout
    families = {f.name: f for f in text_string_to_metric_families(out)}
    assert families["tally_health_status"].type == "gauge"
    assert {s.labels["check"] for s in families["tally_health_status"].samples} == {
        "node",
        "compactor",
        "lag",
        "backlog",
        "folds",
        "maintenance",
        "drift",
        "crash",
        "quarantine",
    }
    assert families["tally_folds_abandoned"].type == "counter"
    assert families["tally_folds_abandoned"].samples[0].value == 0
    assert sum(s.value for s in families["tally_pending_deltas"].samples) == 1
    assert families["tally_counters"].samples[0].value == 1
    database = conn.execute("SELECT current_database()").fetchone()[0]
    assert families["tally_drift_inconsistent_keys"].samples[0].labels == {"database": database, "counter": "m"}
    assert [(s.labels, s.value) for s in families["tally_up"].samples] == [({"database": database}, 1.0)]
    assert all(s.labels["database"] == database for f in families.values() for s in f.samples)


def test_metrics_served_over_http(dsn: str) -> None:
    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [str(REPO / ".venv" / "bin" / "tally"), "--dsn", dsn, "metrics", "--serve", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                    body = resp.read().decode()
                    assert resp.headers["Content-Type"].startswith("text/plain")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        names = {f.name for f in text_string_to_metric_families(body)}
        assert {"tally_health_status", "tally_oldest_pending_seconds", "tally_database_deadlocks"} <= names
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_compactor_samples_the_backlog_for_health(conn: psycopg.Connection) -> None:
    """Each compactor step samples the pending deltas (a count) into
    tally.backlog_samples, at most once every 10 s: the trend tally.health's
    backlog check reads."""
    conn.execute("SELECT tally.create_counter('sampled')")
    conn.execute(
        "SELECT tally.increment_counters(array_fill('sampled'::text, ARRAY[5000]),"
        " ARRAY(SELECT 'k' || g FROM generate_series(1, 5000) AS g), array_fill(1::bigint, ARRAY[5000]))"
    )
    assert conn.execute("SELECT count(*) FROM tally.backlog_samples").fetchone() == (0,)
    conn.execute("CALL tally.compact(1000)")  # five folding steps, and more
    samples = conn.execute("SELECT pending FROM tally.backlog_samples").fetchall()
    assert len(samples) == 1, samples  # the first step's; the others came within 10 s
    assert samples == [(5000,)], samples  # taken before the first step folded
    reason = conn.execute("""SELECT reason FROM tally.health WHERE "check" = 'backlog'""").fetchone()[0]
    assert reason.startswith(f"not growing: {samples[0][0]} deltas pending")
