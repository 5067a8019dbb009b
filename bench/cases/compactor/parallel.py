"""Parallel folds: a backfill of increments over 60,000 keys with
timestamps spread over a year, ingested first (no compactor running), then
folded by one compactor (CALL tally.compact()) and by two compactors folding
one key slice each at once (CALL tally.compact(p_slice => k, p_slices => 2)
in two sessions), side by side, beside the ceiling (ceiling.py) on the very
same deltas. The compactors' sessions are sampled meanwhile
(pg_stat_activity: on CPU or waiting, and on what); each fold rate is also
given as a share of both ceilings by wall clock, and of the first per CPU
second of the backend (the runs get different shares of a shared machine)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import psycopg

from bench.cases.compactor import YEAR, ceiling
from bench.counters import counter_total, fresh_counter, load_seeded
from bench.runners import SessionSampler, busy_share, cpu_seconds, machine_busy

KEYS = 60_000


def _doing(state: str, wtype: str | None, wevent: str | None) -> str:
    if state == "active":
        return "on CPU" if wtype is None else f"{wtype}:{wevent}"
    return "idle (between calls)"


def _fold_with(dsn: str, slices: int, app: str, plain: bool = False) -> tuple[float, float, float]:
    """Fold everything pending with `slices` compactors at once (1, or
    `plain`: each a plain CALL tally.compact(), sharing the work by itself;
    else slice k of `slices` each); returns the seconds until the last one returned,
    the CPU seconds the compactors' backends used (the server runs on this
    machine) and the share of the machine's CPU busy meanwhile (everyone's)."""
    errors: list[BaseException] = []
    cpu: list[float] = []
    ready = threading.Barrier(slices + 1)

    def one(k: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True, application_name=app) as conn:
                pid = conn.info.backend_pid
                before = cpu_seconds(pid)
                ready.wait()
                if slices == 1 or plain:
                    conn.execute("CALL tally.compact()")
                else:
                    conn.execute("CALL tally.compact(100000, 5, %s::integer, %s::integer)", (k, slices))
                cpu.append(cpu_seconds(pid) - before)
        except BaseException as exc:  # reported below
            errors.append(exc)
            ready.abort()

    threads = [threading.Thread(target=one, args=(k,)) for k in range(slices)]
    for t in threads:
        t.start()
    ready.wait()
    busy0 = machine_busy()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    busy = busy_share(busy0, machine_busy())
    if errors:
        raise errors[0]
    return secs, sum(cpu), busy


def _fold(dsn: str, conn: psycopg.Connection, n: int, keys: int, seed: int, slices: int, plain: bool = False) -> dict:
    """The backfill of ``seed`` ingested, then folded by ``slices`` compactors
    (``plain``: plain ones, sharing by themselves)."""
    name = f"bench_par_{'plain_' if plain else ''}{slices}"
    fresh_counter(conn, name)
    conn.execute("CALL tally.compact()")
    conn.execute("CHECKPOINT")
    insert_rate = load_seeded(dsn, name, n, YEAR, keys, seed)
    app = f"tally bench fold {'plain ' if plain else ''}{slices}"
    with SessionSampler(dsn, app, 0.05, _doing) as seen:
        secs, cpu_s, busy = _fold_with(dsn, slices, app, plain)
    assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0
    total = counter_total(conn, name)
    assert total == n, (total, n)
    return {
        "seconds": round(secs, 2),
        "deltas_per_s": round(n / secs),
        "insert_per_s": round(insert_rate),
        "sessions": seen.shares(),
        "load_1min": round(os.getloadavg()[0], 2),
        # CPU the compactors' backends got: cores used on average,
        # and deltas folded per CPU second (the cost of a delta)
        "compactor_cpu_s": round(cpu_s, 1),
        "compactor_cores": round(cpu_s / secs, 2),
        "deltas_per_cpu_s": round(n / cpu_s) if cpu_s else None,
        "machine_busy": round(busy, 3),
    }


def measure_run(dsn: str, conn: psycopg.Connection, n: int, keys: int, seed: int) -> dict:
    """One run: the ceilings first, then one compactor, then two, all on the deltas of ``seed``."""
    top = ceiling.measure(dsn, "bench_par_ceiling", n, keys, seed, None)
    chunked = ceiling.measure(dsn, "bench_par_ceiling_chunks", n, keys, seed, 100_000)
    one, two = (_fold(dsn, conn, n, keys, seed, slices) for slices in (1, 2))
    for x in (one, two):
        x["of_ceiling"] = round(x["deltas_per_s"] / top["deltas_per_s"], 2)
        x["of_ceiling_chunks"] = round(x["deltas_per_s"] / chunked["deltas_per_s"], 2)
        if x["deltas_per_cpu_s"] and top["deltas_per_cpu_s"]:
            x["cpu_of_ceiling"] = round(x["deltas_per_cpu_s"] / top["deltas_per_cpu_s"], 2)
    return {
        "ceiling": top,
        "ceiling_chunks": chunked,
        "one": one,
        "two_slices": two,
        "ratio": round(one["seconds"] / two["seconds"], 2),
    }


def run(dsn: str, n: int, keys: int = KEYS, repeat: int = 2) -> Iterator[dict]:
    """``repeat`` runs (run r folds the backfill of seed r)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CALL tally.compact()")
        # Warm-up: the rollup partitions a year of buckets needs exist before
        # either measured fold runs, so neither pays for creating them.
        fresh_counter(conn, "bench_par_warmup")
        load_seeded(dsn, "bench_par_warmup", 50_000, YEAR, keys, seed=99)
        conn.execute("CALL tally.compact()")
        for r in range(repeat):
            yield measure_run(dsn, conn, n, keys, r)
