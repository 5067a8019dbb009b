"""The `tally` command line, run as a subprocess against a fresh migrated
database: status, compact, migrate; and its progress bar."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import psycopg
from tally.progress import Progress

REPO = Path(__file__).resolve().parents[2]
TALLY = str(REPO / ".venv" / "bin" / "tally")


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
