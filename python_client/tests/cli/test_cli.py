"""The `tally` command line, run as a subprocess against a fresh migrated
database: status, compact, migrate, and `compact --loop --workers N` (N
compactor sessions, one key slice each, in one process: they fold
everything, each its own slice, only the first runs the maintenance, and
SIGTERM stops them all); and its progress bar. (The compactor service
itself: test_compactor_service.py.)
"""

from __future__ import annotations

import io
import signal
import subprocess
from pathlib import Path

import psycopg
from tally.progress import Progress
from test_compactor_service import TALLY, Service, wait_until


def tally(dsn: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([TALLY, "--dsn", dsn, *args], capture_output=True, text=True, timeout=timeout)


def test_status_shows_counters_lag_and_health(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('page_views')")
    conn.execute("SELECT tally.create_counter('followers', '{day}', true)")
    conn.execute("SELECT tally.increment_counters('{page_views,page_views,page_views}', '{a,b,a}', '{1,1,1}')")
    r = tally(dsn, "status")
    assert r.returncode == 0, r.stdout + r.stderr  # nothing critical: the deltas were written just now
    lines = r.stdout.splitlines()
    views = next(line.split() for line in lines if line.startswith("page_views"))
    assert views[:4] == ["page_views", "fast", "minute,hour,day,week,month", "3"]
    followers = next(line.split() for line in lines if line.startswith("followers"))
    assert followers[:4] == ["followers", "durable", "day", "0"]
    assert "Compactor lag" in r.stdout and "Health" in r.stdout
    for check in ("compactor", "lag", "folds", "maintenance", "drift", "crash", "quarantine"):
        assert any(line.split()[:1] == [check] for line in lines), check
    assert "oldest pending increment" in r.stdout and "(3 pending)" in r.stdout


def test_compact_folds_what_is_pending(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('c_cli')")
    conn.execute("SELECT tally.increment_counters('{c_cli,c_cli}', '{k,k}', '{2,5}')")
    assert conn.execute("SELECT tally._pending()").fetchone()[0] == 2
    r = tally(dsn, "compact")
    assert r.returncode == 0, r.stderr
    assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0
    total = conn.execute(
        "SELECT t.value FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id"
        " WHERE c.name = 'c_cli' AND t.key = 'k'"
    ).fetchone()
    assert total == (7,)
    status = tally(dsn, "status")
    assert status.returncode == 0, status.stdout + status.stderr  # nothing pending: every check ok
    views = next(line.split() for line in status.stdout.splitlines() if line.startswith("c_cli"))
    assert views[3] == "0"


def test_status_exits_2_when_a_check_is_critical(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("DELETE FROM tally.crash_marker")  # what a crash reset of the unlogged tables looks like
    r = tally(dsn, "status")
    assert r.returncode == 2, r.stdout + r.stderr
    crash = next(line for line in r.stdout.splitlines() if line.startswith("crash"))
    assert "critical" in crash


def test_errors_are_one_line_with_the_hint(dsn: str) -> None:
    r = tally(dsn, "migrate", "base")
    assert r.returncode == 0, r.stderr
    r = tally(dsn, "status")
    assert r.returncode == 1
    assert r.stderr.startswith("tally: ") and "Traceback" not in r.stderr


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_redraws_on_a_terminal_and_prints_one_line_in_a_log() -> None:
    log = io.StringIO()
    with Progress(10, "loading", unit="rows", stream=log) as bar:
        for _ in range(10):
            bar.advance()
    assert log.getvalue().count("\n") == 1 and "\r" not in log.getvalue()
    assert "10/10 rows" in log.getvalue() and "100%" in log.getvalue()

    tty = _Tty()
    with Progress(4, "folding", stream=tty) as bar:
        bar.update(2)
    out = tty.getvalue()
    assert out.count("\r") >= 2 and out.endswith("\n") and "100%" in out


def test_compact_loop_with_workers_folds_every_slice(dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    conn.execute("SELECT tally.create_counter('par_cli')")
    service = Service(dsn, tmp_path / "log", "--workers", "3", "--interval", "0.2", "--max-deltas", "300")
    try:
        for k in range(3):
            service.wait_log(f"starting slice {k} of 3")
        service.wait_log("maintenance done", timeout=60)
        # every loop is folding now: each folds its own slice of these
        keys = [f"k{i}" for i in range(2_000)]
        conn.execute(
            "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[])",
            (["par_cli"] * len(keys), keys, [2] * len(keys)),
        )
        wait_until(
            lambda: conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0,
            60,
            "every delta folded",
            service,
        )
        sessions = conn.execute(
            "SELECT array_agg(application_name ORDER BY application_name) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name LIKE 'tally compactor%%'"
        ).fetchone()[0]
        assert sessions == ["tally compactor 0/3", "tally compactor 1/3", "tally compactor 2/3"]
        code, _ = service.stop(signal.SIGTERM, timeout=20)
        assert code == 0, service.log
    finally:
        service.close()
    log = service.log
    assert log.count("maintenance done") == 1, log  # slice 0 only
    assert log.count("stopped on SIGTERM") == 3, log
    assert conn.execute(
        "SELECT array_agg(DISTINCT slice ORDER BY slice) FROM tally.fold_runs"
        " WHERE slices = 3 AND mode = 'delete' AND deltas > 0"
    ).fetchone()[0] == [0, 1, 2]
    assert conn.execute(
        "SELECT count(*), sum(value) FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id"
        " WHERE c.name = 'par_cli'"
    ).fetchone() == (len(keys), 2 * len(keys))


def test_workers_need_loop(dsn: str) -> None:
    done = subprocess.run([TALLY, "--dsn", dsn, "compact", "--workers", "2"], capture_output=True, text=True)
    assert done.returncode != 0
    assert "--workers needs --loop" in done.stderr
    bad = subprocess.run([TALLY, "--dsn", dsn, "compact", "--loop", "--workers", "65"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "must be between 1 and 64" in bad.stderr
