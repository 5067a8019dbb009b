"""The thin client, sync and async: each method is one SQL function call;
`_tx` variants join the caller's transaction and roll back with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from tally import Bucket, GroupCommit, KeyValue, Tally, _sql

from .sides import AsyncSide, Side, SyncSide, run_threads


@pytest.fixture
def pool(side: Side, dsn: str):
    with side.pool(dsn, min_size=1, max_size=2) as p:
        yield p


def test_every_method_over_a_pool(side: Side, pool) -> None:
    t = side.tally(pool)
    t.create_counter("c_views", ["hour", "day"])
    assert t.increment("c_views", "a") is True
    assert t.increment("c_views", "a", 4, datetime.now(UTC) - timedelta(hours=1)) is True
    assert t.increment_many(["c_views", "c_views"], ["b", "a"], [2, -1]) == 2
    assert t.value("c_views", "a") == 4
    t.compact()
    assert t.value("c_views", "a") == 4
    now = datetime.now(UTC)
    series = t.series("c_views", "a", "hour", now - timedelta(hours=3), now)
    assert all(isinstance(b, Bucket) for b in series)
    assert sum(b.value for b in series) == 4 and len(series) == 2
    assert t.top("c_views", "all", limit=2) == [KeyValue("a", 4), KeyValue("b", 2)]
    assert t.top("c_views", "hour", now - timedelta(hours=1), limit=1) == [KeyValue("a", 4)]


def test_both_clients_read_and_write_the_same_rows(side: Side, dsn: str, pool) -> None:
    """Both clients read and write the same rows through the same SQL."""
    t = side.tally(pool)
    t.create_counter("c_shared", durable=True)
    t.increment_many(["c_shared"] * 3, ["x", "y", "x"], [5, 1, 2])
    with psycopg.connect(dsn, autocommit=True) as conn:
        durable, grans = conn.execute(
            "SELECT durable, granularities FROM tally.counters WHERE name = 'c_shared'"
        ).fetchone()
        assert durable is True and grans == list(_sql.DEFAULT_GRANULARITIES)
    other = AsyncSide() if isinstance(side, SyncSide) else SyncSide()
    try:
        with other.connect(dsn, autocommit=True) as conn:
            assert other.tally(conn).value("c_shared", "x") == 7
    finally:
        if isinstance(other, AsyncSide):
            other.close()


def test_increment_tx_commits_and_rolls_back_with_the_caller(side: Side, dsn: str, pool) -> None:
    t = side.tally(pool)
    t.create_counter("c_tx")
    with side.connect(dsn) as conn:
        with conn.transaction():
            conn.execute("CREATE TABLE note_view (note text)")
            assert t.increment_tx(conn, "c_tx", "n1") is True
        with pytest.raises(RuntimeError), conn.transaction():
            conn.execute("INSERT INTO note_view VALUES ('n1')")
            t.increment_tx(conn, "c_tx", "n1", 10)
            assert t.increment_many_tx(conn, ["c_tx"], ["n2"], [3]) == 1
            assert t.value_tx(conn, "c_tx", "n1") == 11  # this transaction sees its own
            assert t.value("c_tx", "n1") == 1  # another session: not committed yet
            raise RuntimeError("the business write failed")
        assert conn.execute("SELECT count(*) FROM note_view").fetchone()[0] == 0
    assert t.value("c_tx", "n1") == 1  # the increment rolled back with it
    assert t.value("c_tx", "n2") == 0


def test_create_counter_tx_rolls_back_with_the_caller(side: Side, dsn: str) -> None:
    with side.connect(dsn) as conn:
        t = side.tally(conn)
        with pytest.raises(RuntimeError), conn.transaction():
            t.create_counter_tx(conn, "c_gone", ["day"])
            assert t.increment_tx(conn, "c_gone", "k") is True
            raise RuntimeError("rolled back")
        with pytest.raises(psycopg.errors.UndefinedObject):
            t.increment("c_gone", "k")


def test_a_plain_connection_runs_each_method_in_its_own_transaction(side: Side, dsn: str) -> None:
    with side.connect(dsn) as conn:
        t = side.tally(conn)
        t.create_counter("c_conn", ["day"])
        assert t.increment("c_conn", "k", 3) is True
        # committed: another session sees it
        with side.connect(dsn) as other:
            assert side.tally(other).value("c_conn", "k") == 3
        day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        series = t.series("c_conn", "k", "day", day - timedelta(days=1), day + timedelta(days=1))
        assert series == [Bucket(day, 3)]  # pending increments count too
        with pytest.raises(psycopg.ProgrammingError):
            t.compact()  # not in autocommit mode
    with side.connect(dsn, autocommit=True) as conn:
        t = side.tally(conn)
        t.compact()
        assert t.value("c_conn", "k") == 3
        series = t.series("c_conn", "k", "day", day - timedelta(days=1), day + timedelta(days=1))
        assert series == [Bucket(day, 3)]


def test_compact_on_a_plain_connection_needs_autocommit(side: Side, dsn: str) -> None:
    with side.connect(dsn) as conn, pytest.raises(psycopg.ProgrammingError, match=rf"^{side.client}\.compact: "):
        side.tally(conn).compact()
    with side.connect(dsn, autocommit=True) as conn:
        side.tally(conn).compact()


def test_errors_surface_with_their_sqlstate(side: Side, pool) -> None:
    t = side.tally(pool)
    with pytest.raises(psycopg.errors.UndefinedObject) as exc:
        t.increment("no_such_counter", "k")
    assert "tally.create_counter" in (exc.value.diag.message_hint or "")


def test_the_constructor_does_no_io(side: Side) -> None:
    class Exploding:
        def __getattr__(self, name: str):
            raise AssertionError(f"constructor touched the source: {name}")

    side.tally(Exploding())
    side.tally(Exploding(), GroupCommit())


def test_event_ids_make_a_replay_a_no_op(side: Side, pool) -> None:
    t = side.tally(pool)
    t.create_counter("c_orders", ["day"])
    assert t.increment("c_orders", "eu", 5, event_id="order-1") is True
    assert t.increment("c_orders", "eu", 5, event_id="order-1") is False
    assert t.increment_many(["c_orders"] * 3, ["eu", "us", "us"], [5, 7, 7], event_ids=["order-1", "o2", "o3"]) == 2
    assert t.increment_many(["c_orders"] * 3, ["eu", "us", "us"], [5, 7, 7], event_ids=["order-1", "o2", "o3"]) == 0
    assert (t.value("c_orders", "eu"), t.value("c_orders", "us")) == (5, 14)


def test_a_single_connection_is_used_by_one_caller_at_a_time(side: Side, dsn: str) -> None:
    """Threads (tasks) sharing a client over one connection take turns: each
    call is its own committed transaction, none nests in another's."""
    with side.connect(dsn) as conn:
        t = side.tally(conn)
        t.create_counter("c_shared_conn")

        def work(_: int) -> None:
            for _ in range(100):
                assert t.increment("c_shared_conn", "k") is True
                t.value("c_shared_conn", "k")

        _, errors = run_threads(8, work)
        assert errors == {}
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with psycopg.connect(dsn, autocommit=True) as other:
        assert Tally(other).value("c_shared_conn", "k") == 800
