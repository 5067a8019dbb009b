"""Group commit in the clients (`Tally(..., group_commit=GroupCommit())`,
`AsyncTally(...)` alike): increments of many threads (tasks) sent together,
one transaction per short window, and every caller's outcome exactly its
own: it returns once its increment committed, a failed transaction raises
in every caller it held, a refused input fails only its caller, an event-id
replay returns False to exactly that caller, and close() sends what is
pending."""

from __future__ import annotations

import asyncio
import gc
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from tally import GroupCommit, Tally

from .sides import FLUSHER, AsyncSide, Side, counters_locked, run_threads, wait_for

THREADS = 16
PER_THREAD = 150


@pytest.fixture
def pool(side: Side, dsn: str):
    with side.pool(dsn, min_size=2, max_size=4) as p:
        yield p


def _stats(t):
    s = t.group_commit_stats
    assert s is not None
    return s


def test_sixteen_callers_coalesced_are_exact(side: Side, pool) -> None:
    t = side.tally(pool, GroupCommit(max_delay=0.005))
    t.create_counter("gc_fast")
    t.create_counter("gc_durable", durable=True)
    hour_ago = datetime.now(UTC) - timedelta(hours=1)

    def work(n: int) -> int:
        for i in range(PER_THREAD):
            counter = "gc_durable" if i % 3 == 0 else "gc_fast"
            delta = -2 if i % 10 == 9 else (n % 5) + 1
            assert t.increment(counter, f"k{(n + i) % 5}", delta, hour_ago if i % 7 == 0 else None) is True
        return n

    with t:
        _, errors = run_threads(THREADS, work)
        assert errors == {}
    want: dict[tuple[str, str], int] = {}
    for n in range(THREADS):
        for i in range(PER_THREAD):
            key = ("gc_durable" if i % 3 == 0 else "gc_fast", f"k{(n + i) % 5}")
            want[key] = want.get(key, 0) + (-2 if i % 10 == 9 else (n % 5) + 1)
    got = {k: t.value(*k) for k in want}
    assert got == want
    s = _stats(t)
    assert s.increments == THREADS * PER_THREAD and s.pending == 0 and s.isolated == 0
    assert s.batches < s.increments / 2 and s.largest > 1, s  # they were coalesced
    assert s.transactions == s.batches
    series = t.series("gc_fast", "k0", "hour", hour_ago - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1))
    assert sum(b.value for b in series) == want[("gc_fast", "k0")]
    assert len(series) == 2  # the increments given `at` landed an hour back
    assert side.flushers() == []  # the flusher is gone
    with pytest.raises(psycopg.ProgrammingError, match="closed"):
        t.increment("gc_fast", "k0")


def test_on_a_single_connection_it_is_serialized(side: Side, dsn: str) -> None:
    """One connection, not for concurrent use: coalesced increments and other
    callers' reads through the same client take turns."""
    with side.connect(dsn) as conn:
        t = side.tally(conn, GroupCommit())
        t.create_counter("gc_single")
        reads: list[int] = []

        def work(n: int) -> None:
            for i in range(PER_THREAD):
                assert t.increment("gc_single", f"k{n % 4}", 1) is True
                if i % 25 == 0:
                    reads.append(t.value("gc_single", f"k{n % 4}"))

        with t:
            _, errors = run_threads(THREADS, work)
        assert errors == {}
        assert [t.value("gc_single", f"k{k}") for k in range(4)] == [THREADS * PER_THREAD // 4] * 4
        assert len(reads) == THREADS * PER_THREAD // 25 and all(r > 0 for r in reads)
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.autocommit is False  # left as the caller had it
        assert _stats(t).largest > 1


def test_a_failed_batch_raises_in_every_caller_and_applies_nothing(side: Side, dsn: str) -> None:
    """statement_timeout cancels the batch: every caller in it gets 57014."""
    with side.pool(dsn, min_size=1, max_size=2, kwargs={"options": "-c statement_timeout=1500"}) as pool:
        t = side.tally(pool, GroupCommit(max_delay=0.001))
        t.create_counter("gc_timeout", durable=True)
        first_out: list = []
        out: list = []
        with t, counters_locked(dsn) as wait_blocked:
            first = threading.Thread(
                target=lambda: first_out.append(run_threads(1, lambda _: t.increment("gc_timeout", "a")))
            )
            first.start()
            wait_blocked(1)  # batch 1 (one increment) waits on the lock

            def caller(i: int) -> bool:
                return t.increment("gc_timeout", f"k{i}", i + 1)

            rest = threading.Thread(target=lambda: out.append(run_threads(THREADS - 1, caller)))
            rest.start()
            wait_for(lambda: _stats(t).pending == THREADS - 1)  # batch 2 formed while batch 1 waits
            rest.join(timeout=60)
            first.join(timeout=60)
        results, errors = out[0]
        assert results == {} and len(errors) == THREADS - 1
        for exc in [*errors.values(), first_out[0][1][0]]:
            assert isinstance(exc, psycopg.errors.QueryCanceled) and exc.sqlstate == "57014"
            assert "statement timeout" in str(exc)
        assert len({id(exc) for exc in errors.values()}) == THREADS - 1  # each caller its own copy
        s = _stats(t)
        assert (s.batches, s.increments, s.largest) == (2, THREADS, THREADS - 1)
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert Tally(conn).value("gc_timeout", "a") == 0
            assert sum(Tally(conn).value("gc_timeout", f"k{i}") for i in range(THREADS)) == 0
            # nothing of it reached the delta shards either
            assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0


def test_a_refused_input_fails_only_its_caller(side: Side, dsn: str, pool) -> None:
    """An unknown counter and an out-of-range timestamp, which only the server
    can refuse, in a batch with good increments: those two callers get the
    server's error (its SQLSTATE and HINT); the others are applied exactly."""
    t = side.tally(pool, GroupCommit())
    t.create_counter("gc_mixed")
    with t:
        with counters_locked(dsn) as wait_blocked:
            first = threading.Thread(target=lambda: t.increment("gc_mixed", "first"))
            first.start()
            wait_blocked(1)

            def caller(i: int) -> bool:
                if i == 3:
                    return t.increment("gc_no_such_counter", "k")
                if i == 7:
                    return t.increment("gc_mixed", "k", 1, datetime.now(UTC) + timedelta(days=3))
                if i == 9:
                    return t.increment("gc_mixed", "k", 5, event_id="gc-order-1")
                return t.increment("gc_mixed", "k", i)

            out: list = []
            rest = threading.Thread(target=lambda: out.append(run_threads(12, caller)))
            rest.start()
            wait_for(lambda: _stats(t).pending == 12)
        rest.join(timeout=60)
        first.join(timeout=60)
    results, errors = out[0]
    assert set(errors) == {3, 7}
    assert isinstance(errors[3], psycopg.errors.UndefinedObject) and errors[3].sqlstate == "42704"
    assert errors[3].diag.message_hint == "create it with tally.create_counter('gc_no_such_counter')"
    assert isinstance(errors[7], psycopg.errors.DatetimeFieldOverflow) and errors[7].sqlstate == "22008"
    assert results == {i: True for i in range(12) if i not in (3, 7)}
    assert t.value("gc_mixed", "k") == sum(i for i in range(12) if i not in (3, 7, 9)) + 5
    assert t.value("gc_mixed", "first") == 1
    assert side.tally(pool).increment("gc_mixed", "k", 5, event_id="gc-order-1") is False  # applied once
    s = _stats(t)
    assert s.isolated == 1 and s.batches == 2 and s.largest == 12


def test_event_id_pairs_beside_a_refused_input(side: Side, pool) -> None:
    """Two callers per id: True to exactly one; an unknown counter in the same
    batches fails only its own caller."""
    t = side.tally(pool, GroupCommit(max_delay=0.005))
    t.create_counter("gc_pairs")
    n_ids = 40

    def work(n: int) -> list[bool]:
        out = []
        for i in range(n_ids):
            out.append(t.increment("gc_pairs", "eu", 2, event_id=f"o-{n // 2}-{i}"))
            if n == 5 and i == 20:
                with pytest.raises(psycopg.errors.UndefinedObject):
                    t.increment("gc_nope", "eu")
        return out

    with t:
        results, errors = run_threads(THREADS, work)
    assert errors == {}
    for pair in range(THREADS // 2):
        a, b = results[2 * pair], results[2 * pair + 1]
        assert all(x != y for x, y in zip(a, b, strict=True))  # type: ignore[call-overload]
    assert t.value("gc_pairs", "eu") == 2 * (THREADS // 2) * n_ids


BAD_INPUTS = [
    # (counter, key, delta, event_id), error class
    (("gc_v", "", 1, None), psycopg.errors.NullValueNotAllowed),
    (("gc_v", None, 1, None), psycopg.errors.NullValueNotAllowed),
    (("gc_v", "k" * 513, 1, None), psycopg.errors.StringDataRightTruncation),
    (("gc_v", "é" * 257, 1, None), psycopg.errors.StringDataRightTruncation),
    (("gc_v", "k", None, None), psycopg.errors.NullValueNotAllowed),
    (("gc_v", "k", 2**63, None), psycopg.errors.NumericValueOutOfRange),
    (("gc_v", "k", -(2**63) - 1, None), psycopg.errors.NumericValueOutOfRange),
    (("gc_v", "k", 1, ""), psycopg.errors.InvalidParameterValue),
    (("gc_v", "k", 1, "e" * 257), psycopg.errors.StringDataRightTruncation),
    ((None, "k", 1, None), psycopg.errors.NullValueNotAllowed),
    (("", "k", 1, None), psycopg.errors.NullValueNotAllowed),
    (("gc_v", "a\x00b", 1, None), psycopg.DataError),  # psycopg refuses it (no SQLSTATE): batch-wide
    (("gc_v", "k", 1, "e\x00"), psycopg.DataError),
]


@pytest.mark.parametrize(("args", "error"), BAD_INPUTS)
def test_bad_input_is_refused_before_it_joins_a_batch(side: Side, pool, args: tuple, error: type) -> None:
    """What the client can check is refused at once, with the SQLSTATE the
    server gives the same input without group commit; it never reaches a
    batch, so it cannot fail anyone else's increment."""
    plain = side.tally(pool)
    plain.create_counter("gc_v")
    counter, key, delta, event_id = args
    with pytest.raises(psycopg.Error) as server:
        plain.increment(counter, key, delta, event_id=event_id)
    with side.tally(pool, GroupCommit()) as t:
        with pytest.raises(error) as client:
            t.increment(counter, key, delta, event_id=event_id)
        assert client.value.sqlstate == server.value.sqlstate, (server.value, client.value)
        assert str(client.value).startswith(f"{side.client}.increment") and "HINT:" in str(client.value)
        assert _stats(t).increments == 0
        assert t.increment("gc_v", "k", 2) is True
    assert plain.value("gc_v", "k") == 2


def test_wrong_types_are_type_errors(side: Side, pool) -> None:
    with side.tally(pool, GroupCommit()) as t:
        for args in (("gc_v", 42, 1), ("gc_v", "k", "1"), ("gc_v", "k", True), ("gc_v", "k", 1.5)):
            with pytest.raises(TypeError, match=rf"^{side.client}\.increment: (key|delta) must be"):
                t.increment(*args)
        with pytest.raises(TypeError, match="at must be a datetime"):
            t.increment("gc_v", "k", 1, "2026-01-01")
        assert _stats(t).increments == 0


def test_naive_and_aware_timestamps_mix_in_one_batch(side: Side, dsn: str) -> None:
    """A naive `at` is read in the session's TimeZone, as without group commit."""
    with side.pool(dsn, min_size=1, max_size=2, kwargs={"options": "-c TimeZone=Asia/Tokyo"}) as pool:
        plain = side.tally(pool)
        plain.create_counter("gc_tz", ["hour"])
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
        aware = day.replace(hour=12, minute=30)
        naive = aware.replace(tzinfo=None)  # 12:30 in Tokyo: 03:30 UTC
        with side.tally(pool, GroupCommit()) as t:
            _, errors = run_threads(8, lambda i: t.increment("gc_tz", "k", 1, naive if i % 2 else aware))
        assert errors == {}
        plain.increment("gc_tz", "p", 1, naive)
        series = plain.series("gc_tz", "k", "hour", day, day + timedelta(days=1))
        assert [(b.bucket.astimezone(UTC).hour, b.value) for b in series] == [(3, 4), (12, 4)]
        (p,) = plain.series("gc_tz", "p", "hour", day, day + timedelta(days=1))
        assert p.bucket.astimezone(UTC).hour == 3


def test_event_id_replays_through_the_coalescer(side: Side, pool) -> None:
    """Every id is sent by two callers, on two counters, among increments
    without ids: each id returns True to exactly one caller and False to the
    other, and is counted once."""
    t = side.tally(pool, GroupCommit(max_delay=0.005))
    t.create_counter("gc_orders_a", durable=True)
    t.create_counter("gc_orders_b")
    t.create_counter("gc_views")
    n_ids = 60

    def counter_of(pair: int, i: int) -> str:  # both senders of an id use the same counter
        return "gc_orders_a" if (pair + i) % 2 else "gc_orders_b"

    def work(n: int) -> list[tuple[str, str, bool]]:
        out = []
        for i in range(n_ids):
            if n % 3 == 0:  # out of step with the others, so batches mix ids and no ids
                assert t.increment("gc_views", "eu") is True
            ev = f"order-{n // 2}-{i}"
            out.append((counter_of(n // 2, i), ev, t.increment(counter_of(n // 2, i), "eu", i + 1, event_id=ev)))
            if n % 3:
                assert t.increment("gc_views", "eu") is True
        return out

    with t:
        results, errors = run_threads(THREADS, work)
    assert errors == {}
    outcomes: dict[tuple[str, str], list[bool]] = {}
    for rows in results.values():
        for counter, ev, ok in rows:  # type: ignore[attr-defined]
            outcomes.setdefault((counter, ev), []).append(ok)
    assert len(outcomes) == THREADS // 2 * n_ids
    assert all(sorted(v) == [False, True] for v in outcomes.values())
    for name in ("gc_orders_a", "gc_orders_b"):
        want = sum(i + 1 for p in range(THREADS // 2) for i in range(n_ids) if counter_of(p, i) == name)
        assert t.value(name, "eu") == want
    assert t.value("gc_views", "eu") == THREADS * n_ids
    s = _stats(t)
    assert s.largest > 1 and s.transactions > s.batches  # ids of two counters: a transaction each


def test_a_replay_in_the_same_batch_returns_false_to_exactly_that_caller(side: Side, dsn: str, pool) -> None:
    t = side.tally(pool, GroupCommit())
    t.create_counter("gc_once")
    assert t.increment("gc_once", "k", 100, event_id="before") is True
    with t:
        with counters_locked(dsn) as wait_blocked:
            first = threading.Thread(target=lambda: t.increment("gc_once", "k", 1))
            first.start()
            wait_blocked(1)
            calls = [("dup", 10), ("x", 20), ("dup", 30), ("before", 40), ("y", 50)]
            out: list = []
            rest = threading.Thread(
                target=lambda: out.append(
                    run_threads(len(calls), lambda i: t.increment("gc_once", "k", calls[i][1], event_id=calls[i][0]))
                )
            )
            rest.start()
            wait_for(lambda: _stats(t).pending == len(calls))
        rest.join(timeout=60)
        first.join(timeout=60)
    results, errors = out[0]
    assert errors == {}
    assert results[1] is True and results[4] is True and results[3] is False
    assert sorted([results[0], results[2]]) == [False, True]  # the two "dup" callers: one applied
    dup_delta = 10 if results[0] else 30
    assert t.value("gc_once", "k") == 100 + 1 + dup_delta + 20 + 50
    assert _stats(t).largest == len(calls)


def test_close_sends_what_is_pending_and_stops_the_flusher(side: Side, dsn: str, pool) -> None:
    t = side.tally(pool, GroupCommit(max_delay=1.0))
    t.create_counter("gc_close")
    first_out: list = []
    out: list = []
    with counters_locked(dsn) as wait_blocked:
        first = threading.Thread(target=lambda: first_out.append(t.increment("gc_close", "k")))
        first.start()
        wait_blocked(1)
        rest = threading.Thread(target=lambda: out.append(run_threads(8, lambda i: t.increment("gc_close", "k"))))
        rest.start()
        wait_for(lambda: _stats(t).pending == 8)
        closer = threading.Thread(target=t.close)
        closer.start()
        closer.join(timeout=0.05)
        assert closer.is_alive()  # close() waits for what is pending
    closer.join(timeout=60)
    assert not closer.is_alive()
    rest.join(timeout=60)
    first.join(timeout=60)
    assert first_out == [True]
    assert out[0] == ({i: True for i in range(8)}, {})
    assert t.value("gc_close", "k") == 9
    assert side.flushers() == []
    with pytest.raises(psycopg.ProgrammingError, match="closed"):
        t.increment("gc_close", "k")
    assert t.value("gc_close", "k") == 9  # reads still work
    t.close()  # idempotent


def test_no_flusher_is_left_behind(side: Side, pool) -> None:
    side.tally(pool).create_counter("gc_leak")
    for _ in range(10):
        with side.tally(pool, GroupCommit()) as t:
            t.increment("gc_leak", "k")
    assert side.flushers() == []
    assert side.tally(pool).value("gc_leak", "k") == 10


@pytest.mark.parametrize("side", ["sync"], indirect=True)
def test_a_dropped_client_stops_its_thread(side: Side, pool) -> None:
    """A thread does not end with an event loop: a sync client dropped
    unclosed stops its flusher from its finalizer, after what is pending."""
    side.tally(pool).create_counter("gc_leak")
    dropped = side.tally(pool, GroupCommit())
    dropped.increment("gc_leak", "k")  # never closed: dropping it stops its thread
    assert side.flushers() == [FLUSHER]
    del dropped
    gc.collect()
    wait_for(lambda: not side.flushers(), 10)
    assert side.tally(pool).value("gc_leak", "k") == 1


@pytest.mark.parametrize("side", ["async"], indirect=True)
def test_a_cancelled_flusher_fails_every_waiting_caller(side: AsyncSide, dsn: str, pool) -> None:
    """A task ends with its loop: when the flusher is cancelled (as
    asyncio.run cancels what is left), every caller still waiting, the one
    in flight and those in the next batch, gets an error instead of waiting
    forever, and later calls are refused."""
    t = side.tally(pool, GroupCommit(max_delay=1.0))
    t.create_counter("gc_cancel")
    with counters_locked(dsn) as wait_blocked:
        first_out: list = []
        first = threading.Thread(
            target=lambda: first_out.append(run_threads(1, lambda _: t.increment("gc_cancel", "first")))
        )
        first.start()
        wait_blocked(1)
        out: list = []
        rest = threading.Thread(target=lambda: out.append(run_threads(8, lambda i: t.increment("gc_cancel", "k"))))
        rest.start()
        wait_for(lambda: _stats(t).pending == 8)
        (flusher,) = side.call(lambda: [x for x in asyncio.all_tasks() if x.get_name() == FLUSHER])
        side.call(flusher.cancel)
        rest.join(timeout=60)
        first.join(timeout=60)
    results, errors = out[0]
    assert results == {} and len(errors) == 8
    for exc in [*errors.values(), first_out[0][1][0]]:
        assert isinstance(exc, psycopg.OperationalError)
        assert str(exc) == "AsyncTally.increment: group commit stopped (CancelledError)"
    assert side.flushers() == []
    with pytest.raises(psycopg.ProgrammingError, match="closed"):
        t.increment("gc_cancel", "k")
    # nothing was applied: the batch in flight was cancelled in the server too
    # (psycopg cancels the statement of a cancelled task), the next never sent
    assert side.tally(pool).value("gc_cancel", "first") == 0
    assert side.tally(pool).value("gc_cancel", "k") == 0
    t.close()  # returns at once


def test_a_single_connection_in_a_transaction_is_refused(side: Side, dsn: str) -> None:
    """Group commit would otherwise only release a savepoint of the caller's
    open transaction and call that committed."""
    with side.connect(dsn) as conn:
        side.tally(conn).create_counter("gc_intrans")
        with side.tally(conn, GroupCommit()) as t:
            conn.execute("SELECT 1")  # the caller opened a transaction on it
            with pytest.raises(psycopg.ProgrammingError, match="transaction open"):
                t.increment("gc_intrans", "k")
            conn.rollback()
            assert t.increment("gc_intrans", "k") is True
        assert side.tally(conn).value("gc_intrans", "k") == 1


def test_tx_variants_are_never_coalesced(side: Side, dsn: str, pool) -> None:
    with side.tally(pool, GroupCommit()) as t:
        t.create_counter("gc_tx")
        with side.connect(dsn) as conn, pytest.raises(RuntimeError), conn.transaction():
            assert t.increment_tx(conn, "gc_tx", "k", 5) is True
            assert t.value_tx(conn, "gc_tx", "k") == 5  # in the caller's transaction, at once
            raise RuntimeError("the business write failed")
        assert t.value("gc_tx", "k") == 0
        assert _stats(t).increments == 0


def test_group_commit_settings_are_checked() -> None:
    for bad in ({"max_delay": -0.1}, {"max_delay": 2}, {"max_batch": 0}, {"max_batch": 100_001}):
        with pytest.raises(ValueError, match="GroupCommit: max_"):
            GroupCommit(**bad)  # type: ignore[arg-type]


def test_two_processes_replaying_the_same_ids_in_opposite_order_never_deadlock(side: Side, dsn: str) -> None:
    """Two clients (two pools, as two processes would) send the same 40 event
    ids, one in ascending and one in descending arrival order, in batches that
    run at the same moment. Ids are claimed in event-id order whatever the
    arrival order, so one waits for the other instead of deadlocking: every
    id is applied exactly once, and no caller gets 40P01."""
    ids = [f"dl-{i:02d}" for i in range(40)]
    with side.pool(dsn, min_size=1, max_size=2) as pool_a, side.pool(dsn, min_size=1, max_size=2) as pool_b:
        side.tally(pool_a).create_counter("gc_dl", durable=True)
        a = side.tally(pool_a, GroupCommit(max_delay=1.0))
        b = side.tally(pool_b, GroupCommit(max_delay=1.0))
        outcomes: dict[tuple[str, str], object] = {}

        def call(t, name: str, ev: str) -> None:
            try:
                outcomes[(name, ev)] = t.increment("gc_dl", "k", 1, event_id=ev)
            except BaseException as exc:
                outcomes[(name, ev)] = exc

        threads: list[threading.Thread] = []
        with a, b, counters_locked(dsn) as wait_blocked:
            for t in (a, b):  # each client's first batch waits on the lock
                threads.append(threading.Thread(target=t.increment, args=("gc_dl", "first")))
                threads[-1].start()
            wait_blocked(2)
            for t, name, order in ((a, "a", ids), (b, "b", ids[::-1])):
                for n, ev in enumerate(order):  # arrival order: one at a time
                    threads.append(threading.Thread(target=call, args=(t, name, ev)))
                    threads[-1].start()
                    wait_for(lambda t=t, n=n: _stats(t).pending == n + 1)
        for th in threads:
            th.join(timeout=60)
        errors = {k: v for k, v in outcomes.items() if isinstance(v, BaseException)}
        assert errors == {}
        for ev in ids:
            assert sorted([outcomes[("a", ev)], outcomes[("b", ev)]]) == [False, True], ev
        assert side.tally(pool_a).value("gc_dl", "k") == len(ids)
        assert _stats(a).largest == len(ids) and _stats(b).largest == len(ids)


def test_increments_of_one_key_are_summed_only_while_the_sum_fits(side: Side, dsn: str, pool) -> None:
    """Increments of one counter and key at now() in a batch become one delta
    row, their sum; one that would take the sum past bigint stays its own row
    (and nothing is refused)."""
    t = side.tally(pool, GroupCommit())
    t.create_counter("gc_sum")
    deltas = [2**63 - 1, 1, -1, -(2**63 - 1), -1, 5]
    with t:
        with counters_locked(dsn) as wait_blocked:
            first = threading.Thread(target=lambda: t.increment("gc_sum", "other"))
            first.start()
            wait_blocked(1)
            results: dict[int, bool] = {}
            callers = []
            for i, d in enumerate(deltas):  # in this order: the second would overflow the sum
                callers.append(
                    threading.Thread(target=lambda i=i, d=d: results.update({i: t.increment("gc_sum", "k", d)}))
                )
                callers[-1].start()
                wait_for(lambda i=i: _stats(t).pending == i + 1)
        for th in [first, *callers]:
            th.join(timeout=60)
    assert results == {i: True for i in range(len(deltas))}
    assert t.value("gc_sum", "k") == sum(deltas) == 4
    s = _stats(t)
    assert s.isolated == 0 and s.largest == len(deltas)
    with psycopg.connect(dsn, autocommit=True) as conn:  # fewer rows than increments
        rows = conn.execute(
            "SELECT count(*) FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id"
            " WHERE c.name = 'gc_sum' AND d.key = 'k'"
        ).fetchone()[0]
    assert rows == 2  # 2^63-1 + 1 - 1 - (2^63-1) - 1 + 5, and the 1 that did not fit
