"""The thin client: each method is one SQL function call; `_tx` variants
join the caller's transaction and roll back with it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import ConnectionPool
from tally import Bucket, KeyValue, Tally


@pytest.fixture
def pool(dsn: str):
    with ConnectionPool(dsn, min_size=1, max_size=2, open=True) as p:
        yield p


def test_increment_value_series_top_compact(pool: ConnectionPool) -> None:
    t = Tally(pool)
    t.create_counter("c_views", ["hour", "day"])
    assert t.increment("c_views", "a") is True
    assert t.increment("c_views", "a", 4, datetime.now(UTC) - timedelta(hours=1)) is True
    assert t.increment_many(["c_views", "c_views"], ["b", "a"], [2, -1]) == 2
    assert t.value("c_views", "a") == 4
    t.compact()
    assert t.value("c_views", "a") == 4
    series = t.series("c_views", "a", "hour", datetime.now(UTC) - timedelta(hours=3), datetime.now(UTC))
    assert all(isinstance(b, Bucket) for b in series)
    assert sum(b.value for b in series) == 4 and len(series) == 2
    assert t.top("c_views", "all", limit=2) == [KeyValue("a", 4), KeyValue("b", 2)]


def test_increment_tx_commits_and_rolls_back_with_the_caller(dsn: str, pool: ConnectionPool) -> None:
    t = Tally(pool)
    t.create_counter("c_tx")
    with psycopg.connect(dsn) as conn:
        with conn.transaction():
            conn.execute("CREATE TABLE note_view (note text)")
            t.increment_tx(conn, "c_tx", "n1")
        with pytest.raises(RuntimeError), conn.transaction():
            conn.execute("INSERT INTO note_view VALUES ('n1')")
            t.increment_tx(conn, "c_tx", "n1", 10)
            assert t.value("c_tx", "n1") == 1  # another session: not committed yet
            raise RuntimeError("the business write failed")
        assert conn.execute("SELECT count(*) FROM note_view").fetchone()[0] == 0
    assert t.value("c_tx", "n1") == 1  # the increment rolled back with it


def test_errors_surface_with_their_sqlstate(pool: ConnectionPool) -> None:
    t = Tally(pool)
    with pytest.raises(psycopg.errors.UndefinedObject) as exc:
        t.increment("no_such_counter", "k")
    assert "tally.create_counter" in (exc.value.diag.message_hint or "")


def test_compact_on_a_plain_connection_needs_autocommit(dsn: str) -> None:
    with psycopg.connect(dsn) as conn, pytest.raises(psycopg.ProgrammingError):
        Tally(conn).compact()
    with psycopg.connect(dsn, autocommit=True) as conn:
        Tally(conn).compact()


def test_event_ids_make_a_replay_a_no_op(pool: ConnectionPool) -> None:
    t = Tally(pool)
    t.create_counter("c_orders", ["day"])
    assert t.increment("c_orders", "eu", 5, event_id="order-1") is True
    assert t.increment("c_orders", "eu", 5, event_id="order-1") is False
    assert t.increment_many(["c_orders"] * 3, ["eu", "us", "us"], [5, 7, 7], event_ids=["order-1", "o2", "o3"]) == 2
    assert t.increment_many(["c_orders"] * 3, ["eu", "us", "us"], [5, 7, 7], event_ids=["order-1", "o2", "o3"]) == 0
    assert (t.value("c_orders", "eu"), t.value("c_orders", "us")) == (5, 14)


def test_a_single_connection_is_used_by_one_thread_at_a_time(dsn: str) -> None:
    """Threads sharing a Tally over one connection take turns: each call is
    its own committed transaction, none nests in another thread's."""
    import threading

    with psycopg.connect(dsn) as conn:
        t = Tally(conn)
        t.create_counter("c_shared_conn")
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(100):
                    assert t.increment("c_shared_conn", "k") is True
                    t.value("c_shared_conn", "k")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    with psycopg.connect(dsn, autocommit=True) as other:
        assert Tally(other).value("c_shared_conn", "k") == 800
