"""Everything that can go wrong shows in SQL: deadlocks, drift, a stopped
compactor, a crash reset; and the same as Prometheus metrics."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
from conftest import REPO, rearm_crash_markers
from prometheus_client.parser import text_string_to_metric_families


def health(conn: psycopg.Connection) -> dict[str, str]:
    return dict(conn.execute('SELECT "check", status FROM tally.health'))


def test_an_application_deadlock_shows_in_tally_deadlocks(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)")
    conn.execute("INSERT INTO accounts VALUES (1, 0), (2, 0)")
    before = conn.execute("SELECT database_deadlocks FROM tally.deadlocks").fetchone()[0]
    errors: list[str] = []
    barrier = threading.Barrier(2)

    def transfer(first: int, second: int) -> None:
        with psycopg.connect(dsn) as c:
            try:
                c.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (first,))
                barrier.wait()
                c.execute("UPDATE accounts SET balance = balance - 1 WHERE id = %s", (second,))
                c.commit()
            except psycopg.errors.DeadlockDetected as exc:
                errors.append(exc.sqlstate)

    threads = [threading.Thread(target=transfer, args=(1, 2)), threading.Thread(target=transfer, args=(2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == ["40P01"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # statistics are flushed asynchronously
        row = conn.execute(
            "SELECT database_deadlocks, fold_deadlocks_retried, folds_abandoned FROM tally.deadlocks"
        ).fetchone()
        if row[0] > before:
            break
        time.sleep(0.5)
    assert row == (before + 1, 0, 0)


def test_a_corrupted_rollup_shows_as_drift_and_reconcile_repairs_it(conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('views')")
    for i in range(10):
        conn.execute("SELECT tally.increment_counter('views', 'n1', 1, now() - make_interval(hours => %s))", (i % 3,))
    conn.execute("CALL tally.compact()")
    assert conn.execute("SELECT count(*) FROM tally.check_drift('views')").fetchone()[0] == 0
    assert health(conn)["drift"] == "ok"

    conn.execute(
        "UPDATE tally.rollup_day SET value = value + 7"
        " WHERE counter_id = (SELECT id FROM tally.counters WHERE name = 'views') AND key = 'n1'"
        " AND bucket = date_trunc('day', now(), 'UTC')"
    )
    findings = conn.execute("SELECT key, kind, expected, actual FROM tally.check_drift('views')").fetchall()
    assert ("n1", "internal") in {(k, kind) for k, kind, *_ in findings}
    drift = conn.execute("SELECT keys_checked, inconsistent_keys FROM tally.drift WHERE counter = 'views'").fetchone()
    assert drift == (1, 1)
    assert health(conn)["drift"] == "warn"

    repairs = conn.execute("SELECT granularity, delta, reason FROM tally.reconcile('views', '{n1}')").fetchall()
    assert ("day", -7, "internal") in repairs
    assert conn.execute("SELECT count(*) FROM tally.check_drift('views')").fetchone()[0] == 0
    assert conn.execute("SELECT tally.counter_value('views', 'n1')").fetchone()[0] == 10
    assert conn.execute("SELECT count(*) FROM tally.corrections WHERE reason LIKE 'internal:%'").fetchone()[0] >= 1
    assert health(conn)["drift"] == "ok"


def test_a_source_of_truth_that_disagrees_shows_as_drift(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE follow (subject text, follower text)")
    conn.execute("SELECT tally.create_counter('followers')")
    for who in ("b", "c", "d"):
        conn.execute("INSERT INTO follow VALUES ('alice', %s)", (who,))
        conn.execute("SELECT tally.increment_counter('followers', 'alice')")
    conn.execute("SELECT tally.set_source('followers', 'SELECT count(*) FROM public.follow WHERE subject = $1')")
    assert conn.execute("SELECT count(*) FROM tally.check_drift('followers')").fetchone()[0] == 0
    # A follow that never reached the counter (the app forgot to count it).
    conn.execute("CALL tally.compact()")
    conn.execute("INSERT INTO follow VALUES ('alice', 'e')")
    rows = conn.execute("SELECT kind, expected, actual FROM tally.check_drift('followers')").fetchall()
    assert rows == [("source", 4, 3)]
    assert conn.execute(
        "SELECT drifting_keys, max_abs_drift FROM tally.drift WHERE counter = 'followers'"
    ).fetchone() == (1, 1)
    assert conn.execute("SELECT delta, reason FROM tally.reconcile('followers', '{alice}')").fetchall() == [
        (1, "source")
    ]
    assert conn.execute("SELECT tally.counter_value('followers', 'alice')").fetchone()[0] == 4
    assert conn.execute("SELECT count(*) FROM tally.check_drift('followers')").fetchone()[0] == 0


def test_a_stopped_compactor_turns_health_warn_then_critical(conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('h')")
    conn.execute("CALL tally.compact()")
    assert set(health(conn).values()) == {"ok"}
    conn.execute("SELECT tally.increment_counter('h', 'k')")
    # No compactor runs: lag grows for real past the warn threshold (10 s) ...
    time.sleep(11)
    h = health(conn)
    assert (h["lag"], h["compactor"]) == ("warn", "warn"), h
    # ... and past critical (60 s): age the pending delta and the last step
    # instead of waiting another minute.
    conn.execute("UPDATE tally.delta SET written_at = written_at - interval '60 seconds'")
    conn.execute("UPDATE tally.write_gen SET flipped_at = flipped_at - interval '60 seconds'")
    h = health(conn)
    assert (h["lag"], h["compactor"]) == ("critical", "critical"), h
    conn.execute("CALL tally.compact()")
    h = health(conn)
    assert (h["lag"], h["compactor"]) == ("ok", "ok"), h


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


def test_a_crash_with_pending_fast_deltas_shows_as_a_crash_reset(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('fast_c')")
    conn.execute("SELECT tally.create_counter('durable_c', p_durable => true)")
    for name in ("fast_c", "durable_c"):
        conn.execute("SELECT tally.increment_counter(%s, 'k', 5)", (name,))
    conn.execute("CALL tally.compact()")  # folded: survives anything
    for name in ("fast_c", "durable_c"):
        conn.execute("SELECT tally.increment_counter(%s, 'k', 3)", (name,))  # pending at the crash
    conn.execute("CHECKPOINT")
    pg_ctl("stop", "-m", "immediate", "-w")
    pg_ctl("start", "-w", "-t", "120")
    rearm_crash_markers(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        assert health(c)["crash"] == "critical"  # seen before any compactor ran
        c.execute("CALL tally.compact()")
        (lost_since,) = c.execute("SELECT lost_since FROM tally.crash_resets").fetchone()
        assert lost_since is not None
        assert health(c)["crash"] == "critical"
        reason = c.execute("""SELECT reason FROM tally.health WHERE "check" = 'crash'""").fetchone()[0]
        assert "crash reset detected" in reason
        assert c.execute("SELECT tally.counter_value('fast_c', 'k')").fetchone()[0] == 5  # lost the pending 3
        assert c.execute("SELECT tally.counter_value('durable_c', 'k')").fetchone()[0] == 8  # lost nothing
        assert c.execute("SELECT count(*) FROM tally.crash_resets").fetchone()[0] == 1
        c.execute("CALL tally.compact()")
        assert c.execute("SELECT count(*) FROM tally.crash_resets").fetchone()[0] == 1  # recorded once


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
