"""A distributed install where production runs it: behind pgbouncer in
transaction mode (the clients and `tally compact --loop` through it, exact),
and writers racing a drop and create of their counter (only 42704)."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import psycopg
from load import race_writer
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool
from tally import GroupCommit, Tally
from topology import REPO, Bouncer, wait_until
from truth import Truth

TALLY = str(REPO / ".venv" / "bin" / "tally")


def test_the_clients_and_the_compactor_through_a_pooler(citus_dsn: str, cconn: psycopg.Connection, name: str) -> None:
    params = conninfo_to_dict(citus_dsn)
    bouncer = Bouncer(params.get("host", "127.0.0.1"), int(params["port"]), pool_size=3)
    try:
        target = bouncer.dsn(params["dbname"])
        cconn.execute("SELECT tally.create_counter(%s)", (name,))
        service = subprocess.Popen(
            [TALLY, "--dsn", target, "compact", "--loop", "--interval", "0.3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        truth, lock, errors = Truth(), threading.Lock(), []

        def write(t: Tally, seed: int) -> None:
            rnd = random.Random(seed)
            try:
                for i in range(60):
                    key = str(rnd.randint(1, 20))
                    assert t.increment(name, key, 1) is True
                    assert t.increment(name, key, 2, event_id=f"{seed}-{i}") is True
                    assert t.increment(name, key, 2, event_id=f"{seed}-{i}") is False
                    with lock:
                        truth.add(name, key, 3, datetime.now(UTC))
            except BaseException as exc:
                errors.append(exc)

        try:
            with ConnectionPool(target, min_size=2, max_size=6, kwargs={"prepare_threshold": None}) as pool:
                plain, grouped = Tally(pool), Tally(pool, group_commit=GroupCommit())
                threads = [threading.Thread(target=write, args=(t, s)) for s, t in enumerate([plain, grouped] * 3)]
                for th in threads:
                    th.start()
                for th in threads:
                    th.join()
                grouped.close()
            assert errors == []
            wait_until(
                lambda: (
                    cconn.execute(
                        "SELECT coalesce(sum(deltas), 0) FROM tally.pending_deltas() WHERE counter = %s", (name,)
                    ).fetchone()[0]
                    == 0
                ),
                120,
                "the compactor to fold everything",
            )
        finally:
            service.send_signal(signal.SIGTERM)
            log = service.communicate(timeout=60)[0]
        assert service.returncode == 0, log
        assert " ERROR " not in log and " WARNING " not in log, log
        got = dict(cconn.execute("SELECT key, value FROM tally.top_keys(%s, 'all', now(), 100)", (name,)).fetchall())
        assert got == {k: v for (_, k), v in truth.totals.items()}
    finally:
        bouncer.stop()


def test_writers_racing_a_drop_and_create_get_only_unknown_counter(citus_dsn: str, cconn: psycopg.Connection) -> None:
    for counter in ("rv", "stable"):
        if cconn.execute("SELECT count(*) FROM tally.counters WHERE name = %s", (counter,)).fetchone()[0]:
            cconn.execute("SELECT tally.drop_counter(%s)", (counter,))
        cconn.execute("SELECT tally.create_counter(%s)", (counter,))
    stop = threading.Event()
    errors: Counter = Counter()
    applied: Counter = Counter()
    bad: list[str] = []
    writers = [threading.Thread(target=race_writer, args=(citus_dsn, s, stop, errors, applied, bad)) for s in range(4)]
    for w in writers:
        w.start()
    deadline = time.monotonic() + 6
    cycles = 0
    while time.monotonic() < deadline:
        cconn.execute("SELECT tally.drop_counter('rv')")
        cconn.execute("SELECT tally.create_counter('rv')")
        cycles += 1
    stop.set()
    for w in writers:
        w.join()
    print(f"\n  citus: {cycles} drop/create cycles; applied {dict(applied)}; refused as unknown {dict(errors)}")
    assert bad == []
    assert cycles > 5 and sum(applied.values()) > 0
    cconn.execute("CALL tally.compact()")
    stable = dict(cconn.execute("SELECT key, value FROM tally.top_keys('stable', 'all', now(), 10)").fetchall())
    assert stable == {k: v for k, v in {"b": applied["batch"], "a": applied["batch_event"]}.items() if v}
    for counter in ("rv", "stable"):
        cconn.execute("SELECT tally.drop_counter(%s)", (counter,))
