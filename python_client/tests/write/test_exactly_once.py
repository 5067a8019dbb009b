"""Exactly once: idempotency keys under a SIGKILL of the postmaster, batch
replays raced from different sessions, and a batch killed midway.

Every test keeps its own ground truth: each event (event id, counter, key,
delta) the writers generated, and which calls returned (the ack log)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import workers
from conftest import REPO, rearm_crash_markers

FAST, DURABLE = "eo_fast", "eo_durable"
KEYS = [f"k{i}" for i in range(40)]


@dataclass(frozen=True)
class Event:
    event_id: str
    counter: str
    key: str
    delta: int


@dataclass
class Log:
    """One writer's ground truth: every event it sent, in order, and the ids
    of those whose call returned (acknowledged)."""

    sent: list[Event] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)


def send(conn: psycopg.Connection, events: list[Event]) -> int:
    """One call: a single increment_counter for one event, else one
    increment_counters batch. Returns how many were applied."""
    if len(events) == 1:
        e = events[0]
        (ok,) = conn.execute(
            "SELECT tally.increment_counter(%s, %s, %s, now(), %s)", (e.counter, e.key, e.delta, e.event_id)
        ).fetchone()
        return int(ok)
    (n,) = conn.execute(
        "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], NULL, %s::text[])",
        ([e.counter for e in events], [e.key for e in events], [e.delta for e in events], [e.event_id for e in events]),
    ).fetchone()
    return int(n)


def id_writer(dsn: str, ident: int, log: Log, stop: threading.Event) -> None:
    """Events with ids on both counters, single calls and batches of up to 20.
    A call whose connection the crash killed is neither acked nor retried:
    it may or may not have committed. Any other error (a deadlock, a
    serialization failure, a timeout) ends the writer with an error."""
    rnd = random.Random(ident)
    seq = 0
    try:
        conn = workers.connect_retry(dsn, time.monotonic() + 60)
        while not stop.is_set():
            events = []
            for _ in range(1 if rnd.random() < 0.6 else rnd.randint(2, 20)):
                seq += 1
                events.append(
                    Event(f"w{ident}-{seq}", rnd.choice([FAST, DURABLE]), rnd.choice(KEYS), rnd.choice([1, 2, 5, -1]))
                )
            log.sent.extend(events)
            try:
                send(conn, events)
            except psycopg.OperationalError as exc:
                if not workers.killed(exc, conn):
                    raise workers.unexpected(exc) from exc
                conn = workers.connect_retry(dsn, time.monotonic() + 120)
                continue
            log.acked.update(e.event_id for e in events)
    except Exception as exc:  # surfaced by the test
        log.errors.append(repr(exc))


@dataclass
class Plain:
    """The fast counter's increments without an event id (+1 on key 'plain'):
    acked count, and the acked count at the start of the last compact() that
    returned (everything before it is folded, so survives a crash)."""

    acked: int = 0
    folded_floor: int = 0
    errors: list[str] = field(default_factory=list)


def plain_writer(dsn: str, plain: Plain, stop: threading.Event) -> None:
    try:
        conn = workers.connect_retry(dsn, time.monotonic() + 60)
        while not stop.is_set():
            try:
                conn.execute("SELECT tally.increment_counter(%s, 'plain')", (FAST,))
            except psycopg.OperationalError as exc:
                if not workers.killed(exc, conn):
                    raise workers.unexpected(exc) from exc
                conn = workers.connect_retry(dsn, time.monotonic() + 120)
                continue
            plain.acked += 1
    except Exception as exc:
        plain.errors.append(repr(exc))


def compactor(dsn: str, plain: Plain, stop: threading.Event, errors: list[str]) -> None:
    """CALL tally.compact() every 0.2 s; survives only the crash's kill."""
    try:
        conn = workers.connect_retry(dsn, time.monotonic() + 60)
        while not stop.is_set():
            floor = plain.acked
            try:
                conn.execute("CALL tally.compact()")
                plain.folded_floor = floor
            except psycopg.OperationalError as exc:
                if not workers.killed(exc, conn):
                    raise workers.unexpected(exc) from exc
                conn = workers.connect_retry(dsn, time.monotonic() + 120)
            time.sleep(0.2)
    except Exception as exc:
        errors.append(repr(exc))


def crash_cluster(while_down) -> None:
    """SIGKILL the postmaster and every process of the cluster (as a power
    cut would), call while_down(), then start it again: crash recovery runs,
    unlogged shards are reset."""
    datadir = subprocess.check_output([str(REPO / "scripts" / "db.sh"), "datadir"], text=True).strip()
    pid = int(Path(datadir, "postmaster.pid").read_text().splitlines()[0])
    pgrep = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    procs = [pid, *(int(p) for p in pgrep.stdout.split())]
    for p in procs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    for p in procs:
        while Path(f"/proc/{p}").exists():
            time.sleep(0.05)
    while_down()
    log = str(Path(datadir).parent / "postgres.log")
    pg_ctl = "/usr/lib/postgresql/15/bin/pg_ctl"
    subprocess.run(
        ["runuser", "-u", "postgres", "--", pg_ctl, "-D", datadir, "-l", log, "-w", "-t", "120", "start"],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def applied_ids(conn: psycopg.Connection, counter: str) -> set[str]:
    rows = conn.execute(
        "SELECT e.event_id FROM tally.event_ids AS e JOIN tally.counters AS c ON c.id = e.counter_id WHERE c.name = %s",
        (counter,),
    ).fetchall()
    return {r[0] for r in rows}


def values(conn: psycopg.Connection, counter: str) -> dict[str, int]:
    return {k: conn.execute("SELECT tally.counter_value(%s, %s)", (counter, k)).fetchone()[0] for k in KEYS}


def sums(events: list[Event], counter: str, ids: set[str] | None = None) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for e in events:
        if e.counter == counter and (ids is None or e.event_id in ids):
            out[e.key] += e.delta
    return {k: out.get(k, 0) for k in KEYS}


def test_sigkill_mid_load_then_replay_ends_exact(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter(%s)", (FAST,))
    conn.execute("SELECT tally.create_counter(%s, p_durable => true)", (DURABLE,))
    logs = [Log() for _ in range(8)]
    plain = Plain()
    stop = threading.Event()
    threads = [threading.Thread(target=id_writer, args=(dsn, i, log, stop)) for i, log in enumerate(logs)]
    threads += [threading.Thread(target=plain_writer, args=(dsn, plain, stop)) for _ in range(2)]
    compactor_errors: list[str] = []
    threads.append(threading.Thread(target=compactor, args=(dsn, plain, stop, compactor_errors)))
    for t in threads:
        t.start()
    time.sleep(4)
    at_crash: dict[str, int] = {}

    def while_down() -> None:
        # Nothing can be acknowledged now: what the fast counter may lose is
        # what was acked since the start of the last fold that returned.
        at_crash.update(acked=plain.acked, folded_floor=plain.folded_floor)
        at_crash["id_acked"] = sum(len(log.acked) for log in logs)

    crash_cluster(while_down)
    rearm_crash_markers(dsn)
    time.sleep(2)  # writers reconnect and go on after the restart
    stop.set()
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads)
    assert [e for log in logs for e in log.errors] == [] and plain.errors == [] and compactor_errors == []
    assert at_crash["id_acked"] > 500 and at_crash["acked"] > 500, at_crash

    sent = [e for log in logs for e in log.sent]
    acked = set().union(*(log.acked for log in logs))
    sent_ids = {e.event_id for e in sent}
    assert len(sent_ids) == len(sent)
    with psycopg.connect(dsn, autocommit=True) as c:
        (crash,) = c.execute("""SELECT status FROM tally.health WHERE "check" = 'crash'""").fetchone()
        assert crash == "critical"  # the fast shards were reset, and health says so
        c.execute("CALL tally.compact()")
        assert c.execute("SELECT count(*) FROM tally.crash_resets").fetchone()[0] == 1
        for counter in (DURABLE, FAST):
            applied = applied_ids(c, counter)
            mine = {e.event_id for e in sent if e.counter == counter}
            # every acknowledged increment is there ...
            assert mine & acked <= applied, len((mine & acked) - applied)
            assert applied <= mine
            # ... and counted once: the value is the sum over the applied ids
            assert values(c, counter) == sums(sent, counter, applied), counter
        # The fast counter's increments without an id lose at most what was
        # pending at the crash: nothing acked before the last completed fold.
        (plain_value,) = c.execute("SELECT tally.counter_value(%s, 'plain')", (FAST,)).fetchone()
        lost = plain.acked - plain_value
        assert 0 <= lost <= at_crash["acked"] - at_crash["folded_floor"], (lost, at_crash, plain)

        # Replay everything, acked or not, with the same ids, from 8 sessions at once.
        def replay(log: Log, out: list[int]) -> None:
            with psycopg.connect(dsn, autocommit=True) as rc:
                out.append(sum(send(rc, [e]) for e in log.sent))

        applied_before = len(applied_ids(c, DURABLE)) + len(applied_ids(c, FAST))
        replayed: list[int] = []
        rthreads = [threading.Thread(target=replay, args=(log, replayed)) for log in logs]
        for t in rthreads:
            t.start()
        for t in rthreads:
            t.join()
        assert sum(replayed) == len(sent) - applied_before  # only what was missing was applied
        c.execute("CALL tally.compact()")
        for counter in (DURABLE, FAST):
            assert values(c, counter) == sums(sent, counter), counter
            assert applied_ids(c, counter) == {e.event_id for e in sent if e.counter == counter}


def test_batches_sent_twice_concurrently_count_once(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter(%s)", (FAST,))
    conn.execute("SELECT tally.create_counter(%s, p_durable => true)", (DURABLE,))
    rnd = random.Random(7)
    batches = [
        [Event(f"b{b}-{i}", rnd.choice([FAST, DURABLE]), rnd.choice(KEYS), rnd.choice([1, 3, -2])) for i in range(1000)]
        for b in range(10)
    ]
    deadlocks_before = workers.deadlocks(conn)
    results: dict[int, list[int]] = {}
    barrier = threading.Barrier(2)

    def sender(ident: int, order: list[int]) -> None:
        with psycopg.connect(dsn, autocommit=True) as c:
            barrier.wait()
            results[ident] = [send(c, batches[b]) for b in order]

    # One session sends the batches in order, the other in reverse: they
    # race on every id, from both ends.
    threads = [
        threading.Thread(target=sender, args=(0, list(range(10)))),
        threading.Thread(target=sender, args=(1, list(reversed(range(10))))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results[0]) + sum(results[1]) == 10_000  # each event applied by exactly one of them
    conn.execute("CALL tally.compact()")
    events = [e for batch in batches for e in batch]
    for counter in (FAST, DURABLE):
        assert values(conn, counter) == sums(events, counter), counter
    assert workers.deadlocks(conn) == deadlocks_before
    # A third replay applies nothing.
    assert sum(send(conn, batch) for batch in batches) == 0


def test_a_batch_killed_midway_applies_nothing_and_its_replay_applies_it_whole(
    dsn: str, conn: psycopg.Connection
) -> None:
    conn.execute("SELECT tally.create_counter(%s, p_durable => true)", (DURABLE,))
    batch = [Event(f"big-{i}", DURABLE, KEYS[i % len(KEYS)], 1) for i in range(100_000)]
    outcome: list[BaseException | int] = []

    def big() -> None:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("SET application_name = 'eo_big_batch'")
            try:
                outcome.append(send(c, batch))
            except psycopg.Error as exc:
                outcome.append(exc)

    t = threading.Thread(target=big)
    t.start()
    killed = False
    deadline = time.monotonic() + 30
    while not killed and time.monotonic() < deadline:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'eo_big_batch' AND state = 'active'"
            " AND query LIKE '%increment_counters%' AND now() - query_start > interval '50 ms'"
        ).fetchone()
        if row:
            killed = conn.execute("SELECT pg_terminate_backend(%s)", (row[0],)).fetchone()[0]
        time.sleep(0.01)
    t.join()
    # the kill, nothing else: admin_shutdown from pg_terminate_backend
    assert killed and len(outcome) == 1 and getattr(outcome[0], "sqlstate", None) == "57P01", outcome
    conn.execute("CALL tally.compact()")
    assert sum(values(conn, DURABLE).values()) == 0
    assert applied_ids(conn, DURABLE) == set()
    assert send(conn, batch) == 100_000
    assert send(conn, batch) == 0
    conn.execute("CALL tally.compact()")
    assert values(conn, DURABLE) == sums(batch, DURABLE)


def test_repeatable_read_replay_of_an_id_committed_after_the_snapshot_is_a_serialization_failure(
    dsn: str, conn: psycopg.Connection
) -> None:
    """Under REPEATABLE READ the claim committed by another session after this
    transaction's snapshot is invisible to it: tally raises 40001 (retry)
    instead of counting the event twice; the retry sees the claim."""
    conn.execute("SELECT tally.create_counter(%s, p_durable => true)", (DURABLE,))
    with psycopg.connect(dsn, autocommit=True) as a, psycopg.connect(dsn, autocommit=True) as b:
        a.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        a.execute("SELECT 1").fetchone()  # the snapshot is taken
        assert b.execute("SELECT tally.increment_counter(%s, 'k', 1, now(), 'rr-1')", (DURABLE,)).fetchone()[0]
        try:
            a.execute("SELECT tally.increment_counter(%s, 'k', 1, now(), 'rr-1')", (DURABLE,))
            raise AssertionError("a REPEATABLE READ replay was applied")
        except psycopg.errors.SerializationFailure:
            a.execute("ROLLBACK")
        a.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        assert a.execute("SELECT tally.increment_counter(%s, 'k', 1, now(), 'rr-1')", (DURABLE,)).fetchone()[0] is False
        a.execute("COMMIT")
    assert conn.execute("SELECT tally.counter_value(%s, 'k')", (DURABLE,)).fetchone()[0] == 1


def test_a_transaction_from_before_midnight_holding_an_id_is_waited_for(dsn: str, conn: psycopg.Connection) -> None:
    """Session A began before the boundary (UTC midnight) of today's
    partition of tally.event_ids and holds a claim of id M in the partition
    before it, uncommitted; the boundary was noted after A began. Session B,
    today and outside any grace period, increments with M: it must wait for
    A and then be a replay (or apply, if A rolls back). The clock cannot be
    moved, so A writes exactly the rows its claim would have written (a new
    install's partitions are [T-7, T) and [T, T+7), T today)."""
    conn.execute("SELECT tally.create_counter(%s, p_durable => true)", (DURABLE,))
    cid = conn.execute("SELECT id FROM tally.counters WHERE name = %s", (DURABLE,)).fetchone()[0]
    for outcome in ("COMMIT", "ROLLBACK"):
        event = f"M-{outcome}"
        before = conn.execute("SELECT tally.counter_value(%s, 'km')", (DURABLE,)).fetchone()[0]
        with psycopg.connect(dsn, autocommit=True) as a:
            a.execute("BEGIN")
            a.execute("INSERT INTO tally.event_ids VALUES (%s, %s, (now() AT TIME ZONE 'UTC')::date - 7)", (cid, event))
            a.execute("SELECT tally.increment_counter(%s, 'km', 1)", (DURABLE,))  # its delta
            # the boundary of today's partition is noted only now, after A took its xid
            conn.execute(
                "UPDATE tally.event_days SET first_xid = pg_current_xact_id()"
                " WHERE day = (now() AT TIME ZONE 'UTC')::date"
            )
            result: list[bool] = []

            def session_b(event: str = event, result: list[bool] = result) -> None:
                with psycopg.connect(dsn, autocommit=True) as c:
                    c.execute("SET application_name = 'eo_session_b'")
                    sql = "SELECT tally.increment_counter(%s, 'km', 1, now(), %s)"
                    result.append(c.execute(sql, (DURABLE, event)).fetchone()[0])

            b = threading.Thread(target=session_b)
            b.start()
            deadline = time.monotonic() + 10
            waiting = False
            while not waiting and time.monotonic() < deadline:
                waiting = conn.execute(
                    "SELECT count(*) > 0 FROM pg_stat_activity"
                    " WHERE application_name = 'eo_session_b' AND wait_event_type = 'Lock'"
                ).fetchone()[0]
                time.sleep(0.05)
            assert waiting, "B did not wait for A"
            a.execute(outcome)
            b.join(timeout=10)
        assert result == [outcome == "ROLLBACK"], (outcome, result)
        after = conn.execute("SELECT tally.counter_value(%s, 'km')", (DURABLE,)).fetchone()[0]
        assert after - before == 1, (outcome, before, after)  # counted exactly once either way
