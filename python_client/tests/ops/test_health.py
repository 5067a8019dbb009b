"""tally.health tells the truth: right after install the compactor has
never run; a stopped compactor turns it warn then critical; an
application's deadlock shows in tally.deadlocks; a real crash with pending
fast deltas shows as a crash reset, which can be acknowledged.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import psycopg
from conftest import REPO, rearm_crash_markers


def checks(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    return {c: (s, r) for c, s, r in conn.execute('SELECT "check", status, reason FROM tally.health').fetchall()}


def test_health_right_after_install_says_never_run(conn: psycopg.Connection) -> None:
    status, reason = checks(conn)["compactor"]
    assert status == "warn" and reason.startswith("never run: no compactor step since install")
    conn.execute("CALL tally.compact()")
    assert checks(conn)["compactor"] == ("ok", "nothing pending")


def test_a_recorded_crash_can_be_acknowledged(conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM tally.crash_marker")  # what a crash does to the UNLOGGED marker
    conn.execute("CALL tally.compact()")  # records the reset
    assert checks(conn)["crash"][0] == "critical"
    assert conn.execute("SELECT tally.acknowledge_crash()").fetchone()[0] == 1
    status, reason = checks(conn)["crash"]
    assert status == "ok" and "acknowledged by postgres" in reason


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
