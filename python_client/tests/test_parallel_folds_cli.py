"""`tally compact --loop --workers N`: N compactor sessions, one key slice
each, in one process; they fold everything, each its own slice, only the
first runs the maintenance, and SIGTERM stops them all (exit 0)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import psycopg
from test_cli_compactor import TALLY, Service, wait_until


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
