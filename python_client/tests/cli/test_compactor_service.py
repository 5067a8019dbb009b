"""`tally compact --loop` as a service, run as a subprocess against a real
database: it survives a terminated backend and a server restart, runs
tally.maintain() at start and on schedule, stops cleanly (exit 0) on
SIGTERM/SIGINT, and gives up (exit 1) on errors that retrying cannot fix."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import REPO
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

TALLY = str(REPO / ".venv" / "bin" / "tally")


class Service:
    """A `tally compact --loop` subprocess, its log in a file."""

    def __init__(self, dsn: str, log: Path, *args: str) -> None:
        self.log_path = log
        self._log = log.open("w")
        self.proc = subprocess.Popen(
            [TALLY, "--dsn", dsn, "compact", "--loop", *args],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, pattern: str, timeout: float = 30, count: int = 1) -> str:
        wait_until(lambda: len(re.findall(pattern, self.log)) >= count, timeout, f"log line {pattern!r}", self)
        return self.log

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> tuple[int, float]:
        """Send `sig`; return the exit code and how long the exit took."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, service: Service | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if service is not None and service.proc.poll() is not None:
            raise AssertionError(f"the service exited ({service.proc.returncode}) waiting for {what}:\n{service.log}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f":\n{service.log}" if service else ""))
        time.sleep(0.1)


@pytest.fixture
def service(dsn: str, tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(*args: str, dsn_: str | None = None) -> Service:
        s = Service(dsn_ or dsn, tmp_path / f"compactor-{len(started)}.log", *args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


def pending(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute("SELECT tally._pending()").fetchone()[0]


def folded_total(dsn: str, counter: str, key: str) -> int | None:
    """The folded all-time total (tally.totals), without the pending deltas."""
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute(
            "SELECT t.value FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id"
            " WHERE c.name = %s AND t.key = %s",
            (counter, key),
        ).fetchone()
    return row[0] if row else None


def compactor_pids(dsn: str) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as c:
        return [
            r[0]
            for r in c.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'tally compactor'"
                " AND datname = current_database() ORDER BY pid"
            )
        ]


def increment(dsn: str, counter: str, key: str, delta: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT tally.increment_counter(%s, %s, %s)", (counter, key, delta))


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


def test_loop_reconnects_after_its_backend_is_terminated(dsn: str, conn: psycopg.Connection, service) -> None:
    conn.execute("SELECT tally.create_counter('svc')")
    increment(dsn, "svc", "k", 3)
    s = service("--interval", "0.2")
    wait_until(lambda: folded_total(dsn, "svc", "k") == 3, 30, "the first fold", s)
    (pid,) = compactor_pids(dsn)
    assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
    s.wait_log(r"reconnected to database")
    # Written after the kill: folded by the new connection.
    for delta in (4, 5):
        increment(dsn, "svc", "k", delta)
    wait_until(lambda: folded_total(dsn, "svc", "k") == 12, 30, "the increments written after the kill", s)
    assert pending(dsn) == 0
    (new_pid,) = compactor_pids(dsn)
    assert new_pid != pid
    log = s.log
    assert re.search(r"compact failed: SQLSTATE 57P01: terminating connection due to administrator command", log), log
    assert "connection lost, reconnecting; retrying in" in log
    assert s.proc.poll() is None
    code, took = s.stop(signal.SIGTERM)
    assert code == 0, s.log
    assert took < 3
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO tally.compactor: stopped on SIGTERM$", s.log, re.M)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_sleep_at_once_with_exit_0(dsn: str, service, sig: int) -> None:
    s = service("--interval", "30")
    s.wait_log(r"maintenance done")
    time.sleep(0.5)  # in the 30 s sleep between folds
    code, took = s.stop(sig)
    assert code == 0, s.log
    assert took < 3, took
    assert f"stopped on {signal.Signals(sig).name}" in s.log
    assert "Traceback" not in s.log
    wait_until(lambda: compactor_pids(dsn) == [], 5, "the compactor's backend to end")


def test_a_stop_lets_the_call_in_flight_finish(dsn: str, conn: psycopg.Connection, service) -> None:
    conn.execute("SELECT tally.create_counter('svc')")
    increment(dsn, "svc", "k", 7)
    # Hold the fold lock: the service's CALL waits on it (its maintenance at
    # start cannot take it within 200 ms, is logged, and folding goes on).
    conn.execute("SELECT pg_advisory_lock(tally._fold_lock_key())")
    s = service("--interval", "0.2", "--stop-timeout", "60")
    s.wait_log(r"maintenance failed: 55P03: the fold lock stayed busy for 10 s; folding goes on, next try in 60 s")
    wait_until(
        lambda: (
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tally compactor'"
                " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            ).fetchone()[0]
            == 1
        ),
        30,
        "the CALL to wait on the fold lock",
        s,
    )
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    assert s.proc.poll() is None, "it must wait for the call in flight"
    assert folded_total(dsn, "svc", "k") is None
    conn.execute("SELECT pg_advisory_unlock(tally._fold_lock_key())")
    assert s.proc.wait(timeout=10) == 0, s.log
    assert folded_total(dsn, "svc", "k") == 7  # the call finished its fold before the exit
    assert pending(dsn) == 0
    assert "stopped on SIGTERM" in s.log


def test_a_stop_abandons_a_call_stuck_past_the_stop_timeout(dsn: str, conn: psycopg.Connection, service) -> None:
    conn.execute("SELECT tally.create_counter('svc')")
    increment(dsn, "svc", "k", 7)
    conn.execute("SELECT pg_advisory_lock(tally._fold_lock_key())")
    s = service("--interval", "0.2", "--stop-timeout", "1")
    s.wait_log(r"maintenance failed: 55P03")  # then the wait on the lock is the CALL's
    wait_until(
        lambda: (
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tally compactor'"
                " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            ).fetchone()[0]
            == 1
        ),
        30,
        "the CALL to wait on the fold lock",
        s,
    )
    code, took = s.stop(signal.SIGTERM)
    assert code == 0, s.log
    assert 1 <= took < 4, (took, s.log)
    assert "did not finish within 1 s of SIGTERM: cancelling it and closing the connection" in s.log
    # The server notices the client is gone and rolls the step back.
    wait_until(lambda: compactor_pids(dsn) == [], 10, "the abandoned backend to end")
    assert pending(dsn) == 1 and folded_total(dsn, "svc", "k") is None
    conn.execute("SELECT pg_advisory_unlock(tally._fold_lock_key())")
    conn.execute("CALL tally.compact()")
    assert folded_total(dsn, "svc", "k") == 7  # nothing lost, nothing twice


def missing(conn: psycopg.Connection, tables: list[str]) -> int:
    return conn.execute(
        "SELECT count(*) FROM unnest(%s::text[]) AS n WHERE to_regclass(n) IS NULL", (tables,)
    ).fetchone()[0]


def test_maintenance_runs_at_start_and_on_schedule(dsn: str, conn: psycopg.Connection, service) -> None:
    # What happens when nothing runs maintenance for days: the partition
    # holding today and the days ahead is gone (and no longer listed).
    ahead = conn.execute(
        "SELECT format('tally.event_ids_p%s', to_char(day, 'YYYYMMDD')) FROM tally.event_days"
        " WHERE day <= (now() AT TIME ZONE 'UTC')::date AND next_day > (now() AT TIME ZONE 'UTC')::date"
    ).fetchone()[0]
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(*ahead.split("."))))
    conn.execute("DELETE FROM tally.event_days WHERE day > (now() AT TIME ZONE 'UTC')::date - 7")
    assert conn.execute("SELECT to_regclass(%s)", (ahead,)).fetchone()[0] is None
    s = service("--interval", "0.2", "--maintain-every", "1")
    log = s.wait_log(r"maintenance: event_ids: window from \S+: 1 partitions created, 0 dropped")
    assert conn.execute("SELECT to_regclass(%s)", (ahead,)).fetchone()[0] is not None
    for table in ("rollup_day", "rollup_hour", "rollup_minute", "rollup_month", "rollup_week"):
        assert re.search(rf"maintenance: partitions: tally\.{table}: \d+ partitions", log), table
    assert "maintenance: fold_runs: 0 rows older than 7 days pruned" in log
    # On schedule: every second here.
    log = s.wait_log(r"maintenance done in [\d.]+ s \(\d+ steps\); next in 1 s", timeout=15, count=3)
    assert "maintenance: event_ids: window from" in log and ": 0 partitions created, 0 dropped" in log
    assert s.stop()[0] == 0


def test_loop_survives_a_server_restart(dsn: str, conn: psycopg.Connection, service) -> None:
    conn.execute("SELECT tally.create_counter('svc', p_durable => true)")
    increment(dsn, "svc", "k", 1)
    s = service("--interval", "0.2")
    wait_until(lambda: folded_total(dsn, "svc", "k") == 1, 30, "the first fold", s)
    pg_ctl("stop", "-m", "fast", "-w")
    try:
        s.wait_log(r"cannot connect: .*retrying in", timeout=30, count=2)  # down for a while
    finally:
        pg_ctl("start", "-w", "-t", "120")
    s.wait_log(r"reconnected to database", timeout=60)
    for delta in (10, 100):
        increment(dsn, "svc", "k", delta)
    wait_until(lambda: folded_total(dsn, "svc", "k") == 111, 30, "the increments written after the restart", s)
    log = s.log
    assert re.search(r"SQLSTATE 57P01: terminating connection due to administrator command", log) or re.search(
        r"compact failed: .*server closed the connection", log
    ), log
    assert s.stop()[0] == 0, s.log


def _role_dsn(dsn: str, conn: psycopg.Connection, role: str, *grants: str) -> str:
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    for g in grants:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(g), sql.Identifier(role)))
    return make_conninfo(dsn, user=role)


@pytest.fixture
def login_role(dsn: str, conn: psycopg.Connection) -> Iterator[Callable[..., str]]:
    """A throwaway LOGIN role (cluster-wide: dropped afterwards)."""
    roles: list[str] = []

    def make(*grants: str) -> str:
        role = f"tally_t_{os.getpid()}_{len(roles)}"
        roles.append(role)
        return _role_dsn(dsn, conn, role, *grants)

    yield make
    for role in roles:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_permission_denied_is_not_transient_exit_1(dsn: str, service, login_role) -> None:
    reader = login_role("tally_reader")  # may read, may not compact
    s = service("--interval", "0.2", dsn_=reader)
    assert s.proc.wait(timeout=30) == 1, s.log
    log = s.log
    assert len(re.findall(r"compact failed: SQLSTATE 42501: permission denied for procedure compact", log)) == 5
    assert "not a transient error (attempt 4 of 5), retrying in" in log
    assert re.search(
        r"CRITICAL tally.compactor: compact failed: SQLSTATE 42501: permission denied for procedure compact"
        r" \(HINT: the compactor's login needs tally_admin: GRANT tally_admin TO <login>\);"
        r" not a transient error, giving up after 5 attempts$",
        log,
        re.M,
    ), log
    assert "maintenance failed: SQLSTATE 42501: permission denied for function maintain" in log


def test_a_missing_tally_schema_is_not_transient_exit_1(dsn: str, service) -> None:
    subprocess.run([TALLY, "--dsn", dsn, "migrate", "base"], check=True, capture_output=True)
    s = service("--interval", "0.2")
    assert s.proc.wait(timeout=30) == 1, s.log
    assert re.search(
        r'CRITICAL tally.compactor: compact failed: SQLSTATE 3F000: schema "tally" does not exist'
        r" \(HINT: tally is not installed in this database: `tally --dsn \.\.\. migrate` installs it\);"
        r" not a transient error, giving up after 5 attempts$",
        s.log,
        re.M,
    ), s.log
    assert len(re.findall(r"compact failed: SQLSTATE 3F000", s.log)) == 5


def test_a_failed_call_is_transient(dsn: str, conn: psycopg.Connection, service, login_role) -> None:
    """A CALL that fails after tally.compact's own retries (here: the fold
    lock held elsewhere past the login's lock_timeout, 55P03) is logged and
    retried on the same connection; once the lock is free, folding goes on."""
    admin = login_role("tally_admin")
    role = conninfo_to_dict(admin)["user"]
    conn.execute(sql.SQL("ALTER ROLE {} SET lock_timeout = '100ms'").format(sql.Identifier(role)))
    conn.execute("SELECT tally.create_counter('svc')")
    increment(dsn, "svc", "k", 7)
    conn.execute("SELECT pg_advisory_lock(tally._fold_lock_key())")
    s = service("--interval", "0.2", dsn_=admin)
    try:
        s.wait_log(r"WARNING tally.compactor: compact failed: SQLSTATE 55P03: .*; retrying in", count=2)
        assert folded_total(dsn, "svc", "k") is None
    finally:
        conn.execute("SELECT pg_advisory_unlock(tally._fold_lock_key())")
    wait_until(lambda: folded_total(dsn, "svc", "k") == 7, 30, "the fold once the lock is free", s)
    log = s.log
    assert "connection lost" not in log and "reconnected" not in log  # the same connection throughout
    assert len(re.findall(r"connected to database", log)) == 1
    assert s.stop()[0] == 0, s.log
