"""Writers held back while the compactor is behind (tally.set_backlog_limits):
over the refuse limit every increment call is refused with 53400 and
appends nothing; a compactor that folds the backlog lets them in again
within seconds; every increment a call acknowledged is counted exactly once,
against the test's own count of what was acknowledged."""

from __future__ import annotations

import threading
import time

import psycopg

BATCH = 100


def test_writers_are_refused_over_the_limit_and_admitted_once_folded(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('held')")
    conn.execute("SELECT tally.set_backlog_limits(20000, 40000)")
    for _ in range(5):  # 50,000 pending, no compactor yet
        conn.execute(
            "SELECT tally.increment_counters(array_fill('held'::text, ARRAY[10000]),"
            " ARRAY(SELECT 'k' || g FROM generate_series(1, 10000) AS g), array_fill(1::bigint, ARRAY[10000]))"
        )
    assert conn.execute("SELECT tally.sample_backlog()").fetchone() == (50_000,)
    assert conn.execute("SELECT backlog_state FROM tally.write_gen").fetchone() == (2,)

    stop = threading.Event()
    applied = [0] * 4
    refused = [0] * 4
    after_refusal = [0] * 4
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                while not stop.is_set():
                    try:
                        if n % 2:
                            c.execute("SELECT tally.increment_counter('held', %s)", (f"w{n}",))
                            got = 1
                        else:
                            got = c.execute(
                                "SELECT tally.increment_counters(array_fill('held'::text, ARRAY[%s]),"
                                " ARRAY(SELECT 'b' || g FROM generate_series(1, %s) AS g),"
                                " array_fill(1::bigint, ARRAY[%s]))",
                                (BATCH, BATCH, BATCH),
                            ).fetchone()[0]
                        applied[n] += got
                        if refused[n]:
                            after_refusal[n] += got
                    except psycopg.errors.ConfigurationLimitExceeded as exc:
                        assert "is over the limit of 40000" in str(exc), exc
                        refused[n] += 1
                        time.sleep(0.01)
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in writers:
        t.start()
    time.sleep(1)
    assert sum(applied) == 0 and all(refused), (applied, refused)  # every call refused, none applied

    # a compactor folds the backlog; its samples (every second while writers
    # are held back) let them in again
    def compact() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute("CALL tally.compact_loop(8, 0.2)")
        except BaseException as exc:
            errors.append(exc)

    compactor = threading.Thread(target=compact)
    started = time.monotonic()
    compactor.start()
    while sum(after_refusal) == 0 and time.monotonic() - started < 15:
        time.sleep(0.1)
    admitted_after = time.monotonic() - started
    time.sleep(1)
    stop.set()
    for t in [*writers, compactor]:
        t.join(timeout=60)
    assert not errors, errors
    assert all(after_refusal), (after_refusal, refused)  # every writer got in again
    assert admitted_after < 10, admitted_after
    conn.execute("CALL tally.compact()")
    total = conn.execute("SELECT coalesce(sum(value), 0) FROM tally.totals").fetchone()[0]
    assert total == 50_000 + sum(applied), (total, applied)
    assert conn.execute("SELECT backlog_state FROM tally.write_gen").fetchone() == (0,)
    print(f"\n  {sum(refused)} calls refused; writers admitted again {admitted_after:.1f} s after a compactor started")
