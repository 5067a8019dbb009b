"""tally on a Citus coordinator, installed but not distributed
(`-x distributed=off`, the starting point of growing into Citus): a plain
install in every way. `make test-citus` runs the whole pgTAP suite against
it (every public function, as on a single node); here: the mode is decided
once (tally.settings.distributed) and acted on at install, so the
single node's bodies are the ones installed and nothing is distributed; and
writers with event ids and batches beside compactors stay exact."""

from __future__ import annotations

import multiprocessing as mp
import os

import psycopg
import pytest
import workers
from truth import Truth

# A body that only a distributed install has (tally.<name>.citus.sql).
CITUS_BODIES = {
    "tally.increment_counter(text,text,bigint,timestamp with time zone,text)": "VALUES (v_shard",
    "tally._fold_step(integer,bigint,integer,interval,integer,integer)": "REPEATABLE READ",
    "tally._detect_crash_reset()": "pg_dist_node",
    "tally.node_deadlocks()": "run_command_on_all_nodes",
}


@pytest.fixture(scope="module")
def plain_dsn() -> str:
    dsn = os.environ.get("TALLY_CITUS_PLAIN_DSN")
    if not dsn:
        pytest.fail("TALLY_CITUS_PLAIN_DSN is not set: run the Citus suite with `make test-citus`")
    return dsn


def test_the_single_node_bodies_and_no_distributed_table(plain_dsn: str) -> None:
    with psycopg.connect(plain_dsn, autocommit=True) as c:
        assert c.execute("SELECT extversion IS NOT NULL FROM pg_extension WHERE extname = 'citus'").fetchone() == (
            True,
        )
        assert c.execute("SELECT count(*) > 0 FROM pg_dist_node WHERE groupid <> 0").fetchone() == (True,)
        assert c.execute("SELECT distributed FROM tally.settings").fetchone() == (False,)
        assert c.execute(
            "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid::text LIKE 'tally.%'"
        ).fetchone() == (0,)
        for fn, marker in CITUS_BODIES.items():
            (body,) = c.execute("SELECT pg_get_functiondef(%s::regprocedure)", (fn,)).fetchone()
            assert marker not in body, fn


def test_writers_and_compactors_are_exact(plain_dsn: str, name: str) -> None:
    counters = [f"{name}_a", f"{name}_b"]
    with psycopg.connect(plain_dsn, autocommit=True) as c:
        for counter in counters:
            c.execute("SELECT tally.create_counter(%s)", (counter,))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    stop = ctx.Event()
    writers = [ctx.Process(target=workers.writer, args=(plain_dsn, seed, counters, 150, 2.0, out)) for seed in range(3)]
    compactors = [
        ctx.Process(target=workers.compactor, args=(plain_dsn, k, stop, out, 20_000, False, 2)) for k in range(2)
    ]
    for p in writers + compactors:
        p.start()
    truth = Truth()
    for _ in writers:
        kind, _, _, errors, plain = out.get(timeout=300)
        assert kind == "writer" and errors == [], errors
        truth.merge(Truth.from_plain(plain))
    stop.set()
    for _ in compactors:
        kind, _, calls, errors, _ = out.get(timeout=300)
        assert kind == "compactor" and errors == [] and calls > 0, errors
    for p in writers + compactors:
        p.join(timeout=60)
    with psycopg.connect(plain_dsn, autocommit=True) as c:
        c.execute("CALL tally.compact()")
        got = {
            (counter, key): value
            for counter in counters
            for key, value in c.execute("SELECT key, value FROM tally.top_keys(%s, 'all', now(), 10000)", (counter,))
        }
        assert got == {k: v for k, v in truth.totals.items() if v != 0 or k in got}
        assert c.execute("SELECT count(*) FROM tally.delta").fetchone() == (0,)


def test_a_distributed_install_has_the_citus_bodies(citus_dsn: str) -> None:
    """The complement: where tally is distributed, the Citus bodies are
    installed in place of the single node's (same signatures)."""
    with psycopg.connect(citus_dsn, autocommit=True) as c:
        assert c.execute("SELECT distributed FROM tally.settings").fetchone() == (True,)
        for fn, marker in CITUS_BODIES.items():
            (body,) = c.execute("SELECT pg_get_functiondef(%s::regprocedure)", (fn,)).fetchone()
            assert marker in body, fn
