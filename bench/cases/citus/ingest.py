"""Increments against each database (pgbench, each transaction its own):
tally.increment_counter over 100,000 keys and on one hot key, through the
coordinator on Citus (the call is delegated to the key's worker); beside it
the floor of a write, one delta row by a plain INSERT ... VALUES into
tally.delta (no function); batches, tally.increment_counters of BATCH (2
clients) and of SMALL_BATCH. The same through the key's worker: pgbench
connected to worker 1, every key one whose shard is there (a table of them,
tally_bench_keys, made on that node; on a single node the same table and
script, so both pay its lookup). With the CPU per increment on each node."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from bench.cases.citus import folded_total
from bench.cases.citus.nodes import Measure, Target
from bench.counters import drop_counter, fresh_counter
from bench.runners import PgBench, wait_timed

BATCH = 1_000
SMALL_BATCH = 100
KEYS = 100_000


@dataclass(frozen=True)
class Ingest:
    key: str
    label: str
    script: str  # one pgbench transaction; {counter} and {id} filled in
    per_tx: int  # increments per transaction
    clients: int | None = None  # default: --clients
    via: str = "coordinator"  # or "worker": pgbench on worker 1, keys from tally_bench_keys there


CASES = (
    Ingest(
        "many_keys",
        "increment_counter via the coordinator, 100,000 keys",
        "\\set k random(1, 100000)\nSELECT tally.increment_counter('{counter}', :k::text);\n",
        1,
    ),
    Ingest(
        "hot_key",
        "increment_counter via the coordinator, one hot key",
        "SELECT tally.increment_counter('{counter}', 'hot');\n",
        1,
    ),
    Ingest(
        "raw_insert",
        "one delta row, INSERT .. VALUES (floor)",
        "\\set k random(1, 100000)\nINSERT INTO tally.delta (shard, counter_id, key, delta, at)"
        " VALUES (0, {id}, :k::text, 1, now());\n",
        1,
    ),
    Ingest(
        "batch",
        f"increment_counters, {BATCH:,} per call, via the coordinator",
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
    Ingest(
        "batch100",
        f"increment_counters, {SMALL_BATCH} per call, via the coordinator",
        f"\\set k random(1, {KEYS - SMALL_BATCH})\n"
        f"SELECT tally.increment_counters(array_fill('{{counter}}'::text, ARRAY[{SMALL_BATCH}]),"
        f" (SELECT array_agg('k' || g) FROM generate_series(:k, :k + {SMALL_BATCH - 1}) AS g),"
        f" array_fill(1::bigint, ARRAY[{SMALL_BATCH}]));\n",
        SMALL_BATCH,
    ),
    Ingest(
        "worker_many_keys",
        "increment_counter via the key's worker, 100,000 keys",
        f"\\set k random(1, {KEYS})\n"
        "SELECT tally.increment_counter('{counter}', b.key) FROM tally_bench_keys AS b WHERE b.i = :k;\n",
        1,
        via="worker",
    ),
    Ingest(
        "worker_hot_key",
        "increment_counter via the key's worker, one key",
        "SELECT tally.increment_counter('{counter}', b.key) FROM tally_bench_keys AS b WHERE b.i = 1;\n",
        1,
        via="worker",
    ),
    Ingest(
        "worker_batch100",
        f"increment_counters, {SMALL_BATCH} per call, via a worker",
        f"\\set k random(1, {KEYS - SMALL_BATCH})\n"
        f"SELECT tally.increment_counters(array_fill('{{counter}}'::text, ARRAY[{SMALL_BATCH}]),"
        f" (SELECT array_agg(b.key) FROM tally_bench_keys AS b WHERE b.i BETWEEN :k AND :k + {SMALL_BATCH - 1}),"
        f" array_fill(1::bigint, ARRAY[{SMALL_BATCH}]));\n",
        SMALL_BATCH,
        via="worker",
    ),
)


def via_dsn(t: Target, case: Ingest) -> str:
    """Where the case's clients connect: worker 1 on Citus for a case via
    the key's worker, else the coordinator (or the single node)."""
    return t.workers[0] if case.via == "worker" and t.workers else t.dsn


def make_keys(dsn: str, n: int = KEYS) -> None:
    """tally_bench_keys (i, key) on the node of ``dsn``, a plain table of
    that node only: n keys whose delta shard that node holds (on a single
    node, k1 .. kn)."""
    with psycopg.connect(dsn, autocommit=True) as c, c.transaction():
        (citus,) = c.execute("SELECT distributed FROM tally.settings").fetchone()
        if citus:
            c.execute("SET LOCAL citus.enable_ddl_propagation = off")
        c.execute("DROP TABLE IF EXISTS tally_bench_keys")
        c.execute("CREATE TABLE tally_bench_keys (i integer PRIMARY KEY, key text NOT NULL)")
        here = (
            "get_shard_id_for_distribution_column('tally.delta', s.key) IN ("
            " SELECT p.shardid FROM pg_dist_placement AS p JOIN pg_dist_local_group AS l ON l.groupid = p.groupid)"
            if citus
            else "true"
        )
        c.execute(
            "INSERT INTO tally_bench_keys (i, key)"
            " SELECT row_number() OVER (ORDER BY s.g), s.key"
            f" FROM (SELECT g, 'k' || g AS key FROM generate_series(1, %s) AS g) AS s WHERE {here}"
            " ORDER BY s.g LIMIT %s",
            (n * 8, n),
        )
        (got,) = c.execute("SELECT count(*) FROM tally_bench_keys").fetchone()
        assert got == n, f"{dsn}: {got} keys of its own among {n * 8}, not {n}"


def measure(t: Target, pg: PgBench, case: Ingest, clients: int, seconds: int) -> dict:
    counter = f"cb_{case.key}"
    with psycopg.connect(t.dsn, autocommit=True) as conn:
        cid = fresh_counter(conn, counter)
        conn.execute("CALL tally.compact()")
        script = case.script.format(counter=counter, id=cid)
        n = case.clients or clients
        proc = pg.start(f"{t.key}_{case.key}", script, n, seconds, dsn=via_dsn(t, case))
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
        "via": case.via,
        "clients": n,
        "increments_per_s": round(tps * case.per_tx),
        "increments": increments,
        "stored": got,
        "exact": got == increments,
        "cpu_s": m.cpu,
        "cpu_us_per_increment": m.per(increments),
        "machine_busy": m.machine,
    }
