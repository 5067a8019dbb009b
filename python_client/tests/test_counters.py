"""Counters created and dropped while writers write, and what reads say
about deltas set aside.

- Writers (single increments, batches, event ids) while another session
  drops and re-creates their counter: every error a writer gets is tally's
  own `unknown counter` (42704, naming the function, with the hint), never a
  raw constraint error; a batch is applied whole or refused whole; every
  increment a writer was told was applied is counted exactly once.
- A key whose deltas a fold set aside (tally.quarantine) is read with a
  WARNING naming tally.quarantined, until released.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import psycopg

WRITERS = 6
SECONDS = 8


def _writer(dsn: str, seed: int, stop: threading.Event, errors: Counter, applied: Counter, bad: list[str]) -> None:
    rnd = random.Random(seed)
    n = 0
    with psycopg.connect(dsn, autocommit=True) as c:
        while not stop.is_set():
            n += 1
            kind = rnd.choice(["single", "event", "batch", "batch_event"])
            try:
                if kind == "single":
                    c.execute("SELECT tally.increment_counter('rv', %s::text)", (str(rnd.randint(1, 5)),))
                elif kind == "event":
                    c.execute(
                        "SELECT tally.increment_counter('rv', %s::text, 1, now(), %s::text)",
                        (str(rnd.randint(1, 5)), f"{seed}-{n}"),
                    )
                elif kind == "batch":
                    (k,) = c.execute(
                        "SELECT tally.increment_counters(ARRAY['rv', 'stable', 'rv'], ARRAY['a', 'b', 'c'],"
                        " ARRAY[1, 1, 1]::bigint[])"
                    ).fetchone()
                    assert k == 3, k
                else:
                    (k,) = c.execute(
                        "SELECT tally.increment_counters(ARRAY['stable', 'rv'], ARRAY['a', 'b'], ARRAY[1, 1]::bigint[],"
                        " NULL, ARRAY[%s, %s])",
                        (f"s-{seed}-{n}", f"r-{seed}-{n}"),
                    ).fetchone()
                    assert k == 2, k
                applied[kind] += 1
            except psycopg.Error as exc:
                message = exc.diag.message_primary or ""
                if (
                    exc.sqlstate == "42704"
                    and message.startswith("tally.increment_counter")
                    and '"rv"' in message
                    and exc.diag.message_hint
                ):
                    errors[kind] += 1
                else:
                    bad.append(f"{kind}: {exc.sqlstate}: {message}")


def test_writers_racing_a_drop_and_create_get_only_unknown_counter(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('rv')")
    conn.execute("SELECT tally.create_counter('stable')")
    stop = threading.Event()
    errors: Counter = Counter()
    applied: Counter = Counter()
    bad: list[str] = []
    writers = [threading.Thread(target=_writer, args=(dsn, s, stop, errors, applied, bad)) for s in range(WRITERS)]
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


def test_a_read_of_a_key_with_deltas_set_aside_warns(conn: psycopg.Connection) -> None:
    notices: list[tuple[str, str, str, str]] = []  # (a Diagnostic is valid during its callback only)
    conn.add_notice_handler(
        lambda d: notices.append((d.severity_nonlocalized, d.message_primary, d.message_detail, d.message_hint))
    )
    conn.execute("SELECT tally.create_counter('q')")
    conn.execute("SELECT tally.increment_counter('q', 'k', 9223372036854775807)")
    conn.execute("SELECT tally.increment_counter('q', 'k', 10)")
    conn.execute("SELECT tally.increment_counter('q', 'ok', 1)")
    conn.execute("CALL tally.compact()")
    (set_aside,) = conn.execute("SELECT count(*) FROM tally.quarantine").fetchone()
    assert set_aside == 2
    notices.clear()
    assert conn.execute("SELECT tally.counter_value('q', 'ok')").fetchone()[0] == 1
    assert notices == []  # a clean key: nothing to say
    assert conn.execute("SELECT tally.counter_value('q', 'k')").fetchone()[0] == 0
    ((severity, primary, detail, hint),) = notices
    assert severity == "WARNING"
    assert primary == 'tally.counter_value: key "k" of counter "q" has 2 deltas set aside, not counted in this value'
    assert "tally.quarantined" in detail
    assert "tally.release_quarantined('q', 'k', 'apply')" in hint
    notices.clear()
    conn.execute("SELECT * FROM tally.counter_series('q', 'k', 'day', now() - interval '1 day', now())").fetchall()
    conn.execute("SELECT * FROM tally.top_keys('q', 'all', now())").fetchall()
    assert [n[1] for n in notices] == [
        'tally.counter_series: key "k" of counter "q" has 2 deltas set aside, not counted in this value',
        'tally.top_keys: counter "q" has 2 deltas set aside, not counted in these values',
    ]
    assert conn.execute("SELECT tally.release_quarantined('q', 'k', 'discard')").fetchone()[0] == 2
    notices.clear()
    assert conn.execute("SELECT tally.counter_value('q', 'k')").fetchone()[0] == 0
    assert notices == []
