"""tally behind a connection pooler: pgbouncer (Debian's 1.18) in
transaction pooling mode, started by the suite on loopback in front of the
test cluster, with fewer server connections than clients, so transactions
of different clients share server connections.

- The clients (sync and async, group commit, batches, event ids and their
  replays) work through it exactly, with a pool built with
  `prepare_threshold=None` (README, "Connection poolers").
- The command line works through it with no extra option: `tally compact
  --loop` folds beside writers with no error, `status`, `metrics`,
  `migrate` and `demo` answer.
- Nothing tally runs leaves session state on a pooled server connection:
  with one server connection for every client, what the next client sees
  is what a fresh connection sees.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from conftest import CLUSTER
from prometheus_client.parser import text_string_to_metric_families
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from tally import GroupCommit, Tally
from tally.aio import AsyncTally
from topology import REPO, Bouncer, wait_until
from truth import Truth

TALLY = str(REPO / ".venv" / "bin" / "tally")
SERVER_PORT = CLUSTER.get("port", "54329")
NO_PREPARE = {"prepare_threshold": None}


@pytest.fixture(scope="module")
def bouncer():
    b = Bouncer("127.0.0.1", int(SERVER_PORT), pool_size=3)
    yield b
    b.stop()


def pooled(bouncer: Bouncer, dsn: str) -> str:
    """The test database's DSN through the pooler."""
    return bouncer.dsn(conninfo_to_dict(dsn)["dbname"])


def _settings(conn: psycopg.Connection) -> dict[str, str]:
    names = [
        "search_path",
        "application_name",
        "statement_timeout",
        "lock_timeout",
        "client_connection_check_interval",
        "default_transaction_isolation",
        "timezone",
    ]
    return dict(conn.execute("SELECT name, setting FROM pg_settings WHERE name = ANY (%s)", (names,)).fetchall())


def test_the_clients_through_a_transaction_pooler_are_exact(bouncer: Bouncer, dsn: str, conn) -> None:
    conn.execute("SELECT tally.create_counter('views')")
    conn.execute("SELECT tally.create_counter('orders', p_durable => true)")
    target = pooled(bouncer, dsn)
    truth = Truth()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def writer(t: Tally, seed: int) -> None:
        rnd = random.Random(seed)
        try:
            for i in range(150):
                key = str(rnd.randint(1, 30))
                at = datetime.now(UTC) - timedelta(minutes=rnd.randint(0, 120))
                r = rnd.random()
                if r < 0.6:
                    assert t.increment("views", key, 2, at) is True
                    with lock:
                        truth.add("views", key, 2, at)
                elif r < 0.8:
                    event = f"order-{seed}-{i}"
                    assert t.increment("orders", key, 1, at, event_id=event) is True
                    assert t.increment("orders", key, 1, at, event_id=event) is False  # a replay
                    with lock:
                        truth.add("orders", key, 1, at)
                else:
                    keys = [str(rnd.randint(1, 30)) for _ in range(10)]
                    assert t.increment_many(["views"] * 10, keys, [1] * 10, [at] * 10) == 10
                    ids = [f"batch-{seed}-{i}-{j}" for j in range(10)]
                    assert t.increment_many(["orders"] * 10, keys, [3] * 10, [at] * 10, ids) == 10
                    assert t.increment_many(["orders"] * 10, keys, [3] * 10, [at] * 10, ids) == 0
                    with lock:
                        for k in keys:
                            truth.add("views", k, 1, at)
                            truth.add("orders", k, 3, at)
        except BaseException as exc:
            errors.append(exc)

    with ConnectionPool(target, min_size=2, max_size=8, kwargs=NO_PREPARE) as pool:
        plain, grouped = Tally(pool), Tally(pool, group_commit=GroupCommit())
        threads = [threading.Thread(target=writer, args=(t, s)) for s, t in enumerate([plain, grouped] * 4)]
        for th in threads:
            th.start()
        # the compactor folds beside them, through the pooler too
        with psycopg.connect(target, autocommit=True, **NO_PREPARE) as c:
            while any(th.is_alive() for th in threads):
                c.execute("CALL tally.compact()")
                time.sleep(0.1)
        for th in threads:
            th.join()
        grouped.close()
        assert errors == []
        assert grouped.group_commit_stats.increments > 0

    async def async_writers() -> None:
        async with (
            AsyncConnectionPool(target, min_size=2, max_size=6, kwargs=NO_PREPARE) as apool,
            AsyncTally(apool, group_commit=GroupCommit()) as grouped_async,
        ):
            plain_async = AsyncTally(apool)

            async def one(t: AsyncTally, seed: int) -> None:
                rnd = random.Random(seed)
                for i in range(100):
                    key = str(rnd.randint(1, 30))
                    assert await t.increment("views", key, 5) is True
                    assert await t.increment("orders", key, 1, event_id=f"async-{seed}-{i}") is True
                    assert await t.increment("orders", key, 1, event_id=f"async-{seed}-{i}") is False
                    now = datetime.now(UTC)
                    truth.add("views", key, 5, now)
                    truth.add("orders", key, 1, now)

            await asyncio.gather(*(one(t, 100 + s) for s, t in enumerate([plain_async, grouped_async] * 4)))
            await plain_async.compact()

    asyncio.run(async_writers())
    with psycopg.connect(target, autocommit=True, **NO_PREPARE) as c:
        c.execute("CALL tally.compact()")
        t = Tally(c)
        for (counter, key), value in truth.totals.items():
            assert t.value(counter, key) == value, (counter, key)
        for (counter, key, g), series in truth.buckets.items():
            if g != "hour":
                continue
            got = {
                b.bucket: b.value for b in t.series(counter, key, "hour", min(series), max(series) + timedelta(hours=1))
            }
            assert got == {b: v for b, v in series.items() if v != 0 or b in got}, (counter, key)
        # a page of keys and windows, through the pooler too
        keys = sorted({k for (_, k) in truth.totals})
        for counter in ("views", "orders"):
            page = [(kv.key, kv.value) for kv in t.values(counter, [*keys, "never"])]
            assert page == [(k, truth.totals.get((counter, k), 0)) for k in keys] + [("never", 0)], counter
        minute = datetime.now(UTC).replace(second=0, microsecond=0)
        for (counter, key), value in truth.totals.items():
            # every increment is of the last 120 minutes
            assert t.window(counter, key, minute - timedelta(hours=3), minute + timedelta(minutes=1)) == value


def _write_for(target: str, seconds: float, seed: int, truth: Truth, errors: list[BaseException]) -> None:
    rnd = random.Random(seed)
    deadline = time.monotonic() + seconds
    try:
        with psycopg.connect(target, autocommit=True, **NO_PREPARE) as c:
            while time.monotonic() < deadline:
                keys = [str(rnd.randint(1, 500)) for _ in range(50)]
                at = datetime.now(UTC) - timedelta(days=rnd.randint(0, 400))
                c.execute(
                    "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
                    (["views"] * 50, keys, [1] * 50, [at] * 50),
                )
                for k in keys:
                    truth.add("views", k, 1, at)
    except BaseException as exc:
        errors.append(exc)


def _prepares_through_the_pooler(target: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            with psycopg.connect(target, autocommit=True) as c:  # prepare_threshold: psycopg's default
                while not stop.is_set():
                    c.execute("SELECT tally.counter_value('views', %s::text)", (str(random.randint(1, 500)),))
                    c.execute("SELECT count(*) FROM tally.counter_status")
        except psycopg.Error:
            time.sleep(0.05)  # a statement it prepared is not on its next server connection: its problem


def test_the_compactor_service_runs_through_the_pooler(bouncer: Bouncer, dsn: str, conn) -> None:
    """`tally compact --loop` (two slice workers) through the pooler while
    writers write: no failed fold, nothing pending at the end, every value
    exact. Backfilled increments make folds create rollup partitions
    (pg_partman), which sets search_path for the session."""
    conn.execute("SELECT tally.create_counter('views')")
    target = pooled(bouncer, dsn)
    service = subprocess.Popen(
        [TALLY, "--dsn", target, "compact", "--loop", "--interval", "0.2", "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    truth, errors = Truth(), []
    stop = threading.Event()
    # An application client that prepares its statements (psycopg's default:
    # after 5 executions) shares the server connections: what it prepares
    # is there when the compactor's transactions run on them. It is not
    # tally's client and may fail; the compactor must not.
    preparing = threading.Thread(target=_prepares_through_the_pooler, args=(target, stop))
    preparing.start()
    try:
        writers = [threading.Thread(target=_write_for, args=(target, 6, s, truth, errors)) for s in range(3)]
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        assert errors == []
        wait_until(
            lambda: conn.execute("SELECT sum(pending_deltas) FROM tally.compactor_lag").fetchone()[0] == 0,
            60,
            "the service to fold everything",
        )
    finally:
        stop.set()
        preparing.join()
        service.send_signal(signal.SIGTERM)
        log = service.communicate(timeout=60)[0]
    assert service.returncode == 0, log
    assert " ERROR " not in log and " WARNING " not in log and "CRITICAL" not in log, log
    assert conn.execute("SELECT count(*) FROM tally.fold_runs WHERE outcome <> 'ok'").fetchone()[0] == 0
    (folded,) = conn.execute("SELECT coalesce(sum(deltas), 0) FROM tally.fold_runs WHERE outcome = 'ok'").fetchone()
    assert folded == truth.increments
    got = dict(conn.execute("SELECT key, value FROM tally.top_keys('views', 'all', now(), 10000)").fetchall())
    assert got == {k: v for (_, k), v in truth.totals.items()}
    for (_, key, g), series in list(truth.buckets.items())[:50]:
        if g == "day":
            rows = conn.execute(
                "SELECT bucket, value FROM tally.counter_series('views', %s, 'day', %s, %s)",
                (key, min(series), max(series) + timedelta(days=1)),
            ).fetchall()
            assert dict(rows) == series


def test_nothing_tally_runs_leaves_session_state_on_a_pooled_connection(dsn: str, conn) -> None:
    """One server connection for every client: whatever tally ran on it, the
    next client finds it as a fresh connection would. (application_name is
    a parameter pgbouncer keeps per client and sets on the server connection
    for a client that sends one, as applications do; tally's command line
    sends its own that way, never by SET.)"""
    single = Bouncer("127.0.0.1", int(SERVER_PORT), pool_size=1)
    try:
        target = pooled(single, dsn)
        app = {"application_name": "the next client", **NO_PREPARE}
        with psycopg.connect(target, autocommit=True, **app) as c:
            fresh = _settings(c)
            c.execute("SELECT tally.create_counter('views')")
            # backfills: the folds make rollup partitions (pg_partman)
            for days in (800, 1600, 2400):
                c.execute("SELECT tally.increment_counter('views', 'k', 1, now() - make_interval(days => %s))", (days,))
        runs = [
            [TALLY, "--dsn", target, "compact"],
            [TALLY, "--dsn", target, "compact", "--loop", "--duration", "2", "--interval", "0.2"],
            [TALLY, "--dsn", target, "status"],
            [TALLY, "--dsn", target, "metrics"],
        ]
        for argv in runs:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, (argv, out.stdout, out.stderr)
        with psycopg.connect(target, autocommit=True, **NO_PREPARE) as c:
            c.execute("SELECT tally.increment_counter('views', 'k', 1, now() - interval '3200 days')")
            c.execute("SELECT * FROM tally.compact_step()").fetchall()
            c.execute("SELECT * FROM tally.compact_step()").fetchall()
            c.execute("SELECT * FROM tally.maintain()").fetchall()
            c.execute("CALL tally.compact()")
            c.execute("CALL tally.compact_loop(1, 0.2)")
            c.execute("SELECT * FROM tally.health").fetchall()
        with psycopg.connect(target, autocommit=True, **app) as c:
            assert _settings(c) == fresh
            assert c.execute("SELECT tally.counter_value('views', 'k')").fetchone()[0] == 4
            (partitions,) = c.execute(
                "SELECT count(*) FROM pg_inherits WHERE inhparent = 'tally.rollup_day'::regclass"
            ).fetchone()
            assert partitions > 5  # the folds did make partitions
    finally:
        single.stop()


def test_migrate_status_metrics_and_demo_through_the_pooler(bouncer: Bouncer, admin_dsn: str) -> None:
    name = f"tally_pooled_{os.getpid()}"
    with psycopg.connect(admin_dsn, autocommit=True) as a:
        a.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        a.execute(f'CREATE DATABASE "{name}"')
    try:
        target = bouncer.dsn(name)
        for argv, expect in (
            ([TALLY, "--dsn", target, "migrate"], "migrated to head"),
            ([TALLY, "--dsn", target, "demo", "--seconds", "3", "--writers", "3"], "health (tally.health)"),
            ([TALLY, "--dsn", target, "status"], "Node: primary"),
            ([TALLY, "--dsn", target, "metrics"], "tally_up"),
        ):
            out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
            assert out.returncode == 0, (argv, out.stdout[-2000:], out.stderr[-2000:])
            assert expect in out.stdout, (argv, out.stdout[-2000:])
            assert "Traceback" not in out.stderr
        families = {f.name: f for f in text_string_to_metric_families(out.stdout)}
        assert families["tally_up"].samples[0].value == 1
        out = subprocess.run([TALLY, "--dsn", target, "migrate", "base"], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as a:
            a.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
