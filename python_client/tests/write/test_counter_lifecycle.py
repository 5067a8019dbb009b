"""Counters created and dropped while writers write: every error a writer
gets is tally's own `unknown counter` (42704, naming the function, with the
hint), never a raw constraint error; a batch is applied whole or refused
whole; every increment a writer was told was applied is counted once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import psycopg
from load import race_writer

WRITERS = 6


SECONDS = 8


def test_writers_racing_a_drop_and_create_get_only_unknown_counter(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('rv')")
    conn.execute("SELECT tally.create_counter('stable')")
    stop = threading.Event()
    errors: Counter = Counter()
    applied: Counter = Counter()
    bad: list[str] = []
    writers = [threading.Thread(target=race_writer, args=(dsn, s, stop, errors, applied, bad)) for s in range(WRITERS)]
    for w in writers:
        w.start()
    cycles = 0
    deadline = time.monotonic() + SECONDS
    while time.monotonic() < deadline:
        conn.execute("SELECT tally.drop_counter('rv')")
        conn.execute("SELECT tally.create_counter('rv')")
        cycles += 1
        time.sleep(0.01)
    stop.set()
    for w in writers:
        w.join()
    print(f"\n  {cycles} drop/create cycles; applied {dict(applied)}; refused as unknown {dict(errors)}")
    assert bad == []
    assert cycles > 20 and sum(errors.values()) > 0 and sum(applied.values()) > 0
    # Batches are all or nothing: 'stable' got exactly one increment per
    # element of every batch a writer was told was applied.
    conn.execute("CALL tally.compact()")
    stable = dict(conn.execute("SELECT key, value FROM tally.top_keys('stable', 'all', now(), 10)").fetchall())
    assert stable == {k: v for k, v in {"b": applied["batch"], "a": applied["batch_event"]}.items() if v}
