"""Increments against each database (pgbench, each transaction its own):
tally.increment_counter over 100,000 keys and on one hot key, through the
coordinator on Citus (the call is delegated to the key's worker); beside it
the floor of a write, one delta row by a plain INSERT ... VALUES into
tally.delta (no function); and batches, tally.increment_counters of BATCH
(2 clients). With the CPU per increment on each node."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from bench.cases.citus import folded_total
from bench.cases.citus.nodes import Measure, Target
from bench.counters import drop_counter, fresh_counter
from bench.runners import PgBench, wait_timed

BATCH = 1_000


@dataclass(frozen=True)
class Ingest:
    key: str
    label: str
    script: str  # one pgbench transaction; {counter} and {id} filled in
    per_tx: int  # increments per transaction
    clients: int | None = None  # default: --clients


CASES = (
    Ingest(
        "many_keys",
        "increment_counter, 100,000 keys",
        "\\set k random(1, 100000)\nSELECT tally.increment_counter('{counter}', :k::text);\n",
        1,
    ),
    Ingest("hot_key", "increment_counter, one hot key", "SELECT tally.increment_counter('{counter}', 'hot');\n", 1),
    Ingest(
        "raw_insert",
        "one delta row, INSERT .. VALUES (floor)",
        "\\set k random(1, 100000)\nINSERT INTO tally.delta (shard, counter_id, key, delta, at)"
        " VALUES (0, {id}, :k::text, 1, now());\n",
        1,
    ),
    Ingest(
        "batch",
        f"increment_counters, {BATCH:,} per call",
        "SELECT tally.increment_counters('{{"
        + ",".join(["{counter}"] * BATCH)
        + "}}'::text[], '{{"
        + ",".join(f"k{i}" for i in range(1, BATCH + 1))
        + "}}'::text[], '{{"
        + ",".join(["1"] * BATCH)
        + "}}'::bigint[]);\n",
        BATCH,
        clients=2,
    ),
)


def measure(t: Target, pg: PgBench, case: Ingest, clients: int, seconds: int) -> dict:
    counter = f"cb_{case.key}"
    with psycopg.connect(t.dsn, autocommit=True) as conn:
        cid = fresh_counter(conn, counter)
        conn.execute("CALL tally.compact()")
        script = case.script.format(counter=counter, id=cid)
        n = case.clients or clients
        proc = pg.start(f"{t.key}_{case.key}", script, n, seconds)
        with Measure(t) as m:
            wait_timed(proc, seconds, f"{t.label}: {case.label}")
            tps, done = pg.result(proc)
            # The clients' backends (and on Citus their connections to the
            # workers) end now: read the CPU once they are gone and counted
            # in their postmaster's cutime, not while it reaps them.
            time.sleep(1.5)
        increments = done * case.per_tx
        got = folded_total(conn, counter)
        drop_counter(conn, counter)
    return {
        "case": case.key,
        "label": case.label,
        "clients": n,
        "increments_per_s": round(tps * case.per_tx),
        "increments": increments,
        "stored": got,
        "exact": got == increments,
        "cpu_s": m.cpu,
        "cpu_us_per_increment": m.per(increments),
        "machine_busy": m.machine,
    }
