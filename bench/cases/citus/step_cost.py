"""The fixed cost of fold steps: CALL tally.compact() with one delta
pending (on Citus, two-phase commit on every worker): wall ms per call and
fold steps (tally.fold_runs rows) per call."""

from __future__ import annotations

import statistics
import time

import psycopg

from bench.cases.citus import folded_total
from bench.cases.citus.nodes import Target
from bench.counters import drop_counter, fresh_counter


def measure(t: Target, calls: int = 15) -> dict:
    with psycopg.connect(t.dsn, autocommit=True) as conn:
        fresh_counter(conn, "cb_step")
        conn.execute("CALL tally.compact()")
        times, steps = [], []
        for i in range(calls):
            conn.execute("SELECT tally.increment_counter('cb_step', %s)", (f"k{i}",))
            f0 = conn.execute("SELECT count(*) FROM tally.fold_runs").fetchone()[0]
            t0 = time.perf_counter()
            conn.execute("CALL tally.compact()")
            times.append((time.perf_counter() - t0) * 1000)
            steps.append(conn.execute("SELECT count(*) FROM tally.fold_runs").fetchone()[0] - f0)
        ok = folded_total(conn, "cb_step") == calls
        drop_counter(conn, "cb_step")
    r = {"calls": calls, "ms_p50": round(statistics.median(times), 1), "ms_max": round(max(times), 1), "exact": ok}
    r["fold_runs_per_call"] = round(statistics.mean(steps), 2)
    return r
