"""No bloat: under sustained maximum single-row ingest (pgbench, 8 clients)
with the compactor loop running, the delta shards stay small because folds
TRUNCATE drained shards instead of leaving dead tuples; the lag stays low.

`make test` runs 30 s; `make soak` runs it for 10 minutes
(TALLY_SOAK_SECONDS=600)."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import threading
import time

import psycopg
from psycopg.conninfo import conninfo_to_dict

SECONDS = int(os.environ.get("TALLY_SOAK_SECONDS", "30"))
# The bound: 16 shards of at most a few seconds of ingest each, plus their
# index. Measured ~4-12 MB at ~25-35k increments/s on 2 cores.
BOUND_BYTES = 48 * 1024 * 1024

SIZE_SQL = """
SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0)
FROM pg_inherits AS i WHERE i.inhparent = 'tally.delta'::regclass
"""


def test_sustained_ingest_keeps_delta_shards_bounded(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('soak_fast', '{minute,hour,day}')")
    conn.execute("SELECT tally.create_counter('soak_durable', '{hour}', true)")
    params = conninfo_to_dict(dsn)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write(
            "\\set k random(1, 1000)\n"
            "SELECT tally.increment_counter(CASE WHEN :k % 4 = 0 THEN 'soak_durable' ELSE 'soak_fast' END, :k::text);\n"
        )
    os.chmod(script.name, 0o644)

    stop = threading.Event()
    compactor_error: list[BaseException] = []

    def compactor() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                while not stop.is_set():
                    c.execute("CALL tally.compact_loop(5, 0.5)")
        except BaseException as exc:  # reported by the test
            compactor_error.append(exc)

    t = threading.Thread(target=compactor)
    t.start()
    bench = subprocess.Popen(
        [
            "/usr/lib/postgresql/15/bin/pgbench",
            "-n",
            "-c",
            "8",
            "-j",
            "2",
            "-T",
            str(SECONDS),
            "-f",
            script.name,
            "-h",
            params["host"],
            "-p",
            str(params.get("port", 5432)),
            "-U",
            params.get("user", "postgres"),
            params["dbname"],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sizes: list[int] = []
    lags: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as probe:
        while bench.poll() is None:
            sizes.append(probe.execute(SIZE_SQL).fetchone()[0])
            lag = probe.execute(
                "SELECT coalesce(extract(epoch FROM max(oldest_pending_age)), 0) FROM tally.compactor_lag"
            ).fetchone()[0]
            lags.append(float(lag))
            time.sleep(0.5)
    out, err = bench.communicate()
    stop.set()
    t.join(timeout=60)
    os.unlink(script.name)
    assert bench.returncode == 0, err
    assert not compactor_error, compactor_error
    tps = float(next(line.split()[2] for line in out.splitlines() if line.startswith("tps")))

    conn.execute("CALL tally.compact()")
    total = conn.execute("SELECT coalesce(sum(value), 0) FROM tally.totals").fetchone()[0]
    modes = dict(conn.execute("SELECT mode, count(*) FROM tally.fold_runs WHERE outcome = 'ok' GROUP BY mode"))
    steady = sizes[len(sizes) // 4 :]
    lags_sorted = sorted(lags)
    p99 = lags_sorted[min(len(lags_sorted) - 1, int(0.99 * len(lags_sorted)))]
    print(
        f"\nbloat: {SECONDS}s at {tps:,.0f} increments/s; delta shards max {max(sizes) / 2**20:.1f} MiB,"
        f" median {statistics.median(steady) / 2**20:.1f} MiB; lag p50 {statistics.median(lags):.2f}s"
        f" p99 {p99:.2f}s; folds by mode {modes}; total {total}"
    )
    assert total >= tps * SECONDS * 0.9  # every increment pgbench made was folded
    assert max(sizes) < BOUND_BYTES, f"delta shards grew to {max(sizes) / 2**20:.1f} MiB"
    # Nearly every drained shard is reclaimed by TRUNCATE, not left to VACUUM.
    assert modes.get("truncate", 0) >= 0.8 * modes.get("delete", 0), modes
    # Nothing left behind: drained shards are truncated back to (almost) nothing.
    assert conn.execute(SIZE_SQL).fetchone()[0] < 2 * 1024 * 1024
