"""Acknowledged means committed, with group commit too: a process whose 16
threads (tasks, with AsyncTally) coalesce increments into a durable counter
is SIGKILLed at a random time, mid-batch; every increment it reported
acknowledged (logged only after increment() returned) is in the database,
and nothing it did not attempt."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psycopg
from tally import Tally

from .sides import Side

CHILD = {
    "sync": r"""
import os, random, sys, threading
from psycopg_pool import ConnectionPool
from tally import GroupCommit, Tally

dsn, log = sys.argv[1], sys.argv[2]
fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
pool = ConnectionPool(dsn, min_size=2, max_size=4, kwargs={"application_name": "gc-kill-child"})
t = Tally(pool, group_commit=GroupCommit())

def work(n):
    rnd = random.Random(n)
    while True:
        key, delta = f"k{rnd.randrange(8)}", rnd.randrange(1, 10)
        os.write(fd, f"A {key} {delta}\n".encode())  # attempted
        t.increment("gc_kill", key, delta)
        os.write(fd, f"K {key} {delta}\n".encode())  # acknowledged: increment() returned

for n in range(16):
    threading.Thread(target=work, args=(n,), daemon=True).start()
threading.Event().wait()
""",
    "async": r"""
import asyncio, os, random, sys
from psycopg_pool import AsyncConnectionPool
from tally import AsyncTally, GroupCommit

dsn, log = sys.argv[1], sys.argv[2]
fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

async def work(t, n):
    rnd = random.Random(n)
    while True:
        key, delta = f"k{rnd.randrange(8)}", rnd.randrange(1, 10)
        os.write(fd, f"A {key} {delta}\n".encode())  # attempted
        await t.increment("gc_kill", key, delta)
        os.write(fd, f"K {key} {delta}\n".encode())  # acknowledged: increment() returned

async def main():
    kwargs = {"application_name": "gc-kill-child"}
    async with AsyncConnectionPool(dsn, min_size=2, max_size=4, kwargs=kwargs, open=False) as pool:
        t = AsyncTally(pool, group_commit=GroupCommit())
        await asyncio.gather(*(work(t, n) for n in range(16)))

asyncio.run(main())
""",
}


def _read(log: Path) -> tuple[Counter, Counter]:
    attempted: Counter = Counter()
    acked: Counter = Counter()
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in "AK":
            (attempted if parts[0] == "A" else acked)[parts[1]] += int(parts[2])
    return attempted, acked


def test_sigkill_mid_batch_loses_no_acknowledged_increment(
    side: Side, dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    t = Tally(conn)
    t.create_counter("gc_kill", durable=True)
    attempted: Counter = Counter()
    acked: Counter = Counter()
    rnd = random.Random()
    extra = 0  # committed, never acknowledged: in flight at a kill
    for round_ in range(3):
        log = tmp_path / f"round{round_}.log"
        log.touch()
        child = subprocess.Popen([sys.executable, "-c", CHILD[side.name], dsn, str(log)], stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while log.read_text().count("K ") < 300:
                assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
                assert time.monotonic() < deadline, "the child acknowledged too little"
                time.sleep(0.02)
            time.sleep(rnd.uniform(0, 0.4))
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL
        # the killed client's backends end (rolling back what was not committed)
        deadline = time.monotonic() + 30
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gc-kill-child'").fetchone()[
            0
        ]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        a, k = _read(log)
        attempted += a
        acked += k
        in_flight = sum(a.values()) - sum(k.values())
        assert in_flight > 0  # killed with increments in flight
        for key in sorted(attempted):
            value = t.value("gc_kill", key)
            assert acked[key] <= value <= attempted[key], (round_, key, acked[key], value, attempted[key])
        now = sum(t.value("gc_kill", x) for x in attempted) - sum(acked.values())
        print(
            f"round {round_}: deltas {sum(k.values()):,} acknowledged, {in_flight} in flight at the kill,"
            f" {now - extra} of those committed"
        )
        extra = now
    assert len(acked) == 8
