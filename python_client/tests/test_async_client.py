"""The asyncio client: the same methods as the sync one, each one SQL
function call; `_tx` variants join the caller's transaction and roll back
with it. Each test drives its coroutine with asyncio.run (no plugin)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from tally import AsyncTally, Bucket, KeyValue, Tally, _sql


async def _pool(dsn: str) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=2, open=False)
    await pool.open()
    return pool


def test_every_method_over_a_pool(dsn: str) -> None:
    async def run() -> None:
        async with await _pool(dsn) as pool:
            t = AsyncTally(pool)
            await t.create_counter("a_views", ["hour", "day"])
            assert await t.increment("a_views", "a") is True
            assert await t.increment("a_views", "a", 4, datetime.now(UTC) - timedelta(hours=1)) is True
            assert await t.increment_many(["a_views", "a_views"], ["b", "a"], [2, -1]) == 2
            assert await t.value("a_views", "a") == 4
            await t.compact()
            assert await t.value("a_views", "a") == 4
            now = datetime.now(UTC)
            series = await t.series("a_views", "a", "hour", now - timedelta(hours=3), now)
            assert all(isinstance(b, Bucket) for b in series)
            assert sum(b.value for b in series) == 4 and len(series) == 2
            assert await t.top("a_views", "all", limit=2) == [KeyValue("a", 4), KeyValue("b", 2)]
            assert await t.top("a_views", "hour", now - timedelta(hours=1), limit=1) == [KeyValue("a", 4)]

    asyncio.run(run())


def test_the_async_and_sync_clients_agree(dsn: str) -> None:
    """Both clients read and write the same rows through the same SQL."""

    async def run() -> None:
        async with await _pool(dsn) as pool:
            t = AsyncTally(pool)
            await t.create_counter("a_shared", durable=True)
            await t.increment_many(["a_shared"] * 3, ["x", "y", "x"], [5, 1, 2])

    asyncio.run(run())
    with psycopg.connect(dsn, autocommit=True) as conn:
        durable, grans = conn.execute(
            "SELECT durable, granularities FROM tally.counters WHERE name = 'a_shared'"
        ).fetchone()
        assert durable is True and grans == list(_sql.DEFAULT_GRANULARITIES)
        assert Tally(conn).value("a_shared", "x") == 7


def test_increment_tx_commits_and_rolls_back_with_the_caller(dsn: str) -> None:
    async def run() -> None:
        async with await _pool(dsn) as pool:
            t = AsyncTally(pool)
            await t.create_counter("a_tx")
            async with await psycopg.AsyncConnection.connect(dsn) as conn:
                async with conn.transaction():
                    await conn.execute("CREATE TABLE note_view (note text)")
                    assert await t.increment_tx(conn, "a_tx", "n1") is True
                with pytest.raises(RuntimeError):
                    async with conn.transaction():
                        await conn.execute("INSERT INTO note_view VALUES ('n1')")
                        await t.increment_tx(conn, "a_tx", "n1", 10)
                        assert await t.increment_many_tx(conn, ["a_tx"], ["n2"], [3]) == 1
                        assert await t.value_tx(conn, "a_tx", "n1") == 11  # this transaction sees its own
                        assert await t.value("a_tx", "n1") == 1  # another session: not committed yet
                        raise RuntimeError("the business write failed")
                cur = await conn.execute("SELECT count(*) FROM note_view")
                assert (await cur.fetchone())[0] == 0
            assert await t.value("a_tx", "n1") == 1  # the increment rolled back with it
            assert await t.value("a_tx", "n2") == 0

    asyncio.run(run())


def test_create_counter_tx_rolls_back_with_the_caller(dsn: str) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            t = AsyncTally(conn)
            with pytest.raises(RuntimeError):
                async with conn.transaction():
                    await t.create_counter_tx(conn, "a_gone", ["day"])
                    assert await t.increment_tx(conn, "a_gone", "k") is True
                    raise RuntimeError("rolled back")
            with pytest.raises(psycopg.errors.UndefinedObject):
                await t.increment("a_gone", "k")

    asyncio.run(run())


def test_a_plain_connection_runs_each_method_in_its_own_transaction(dsn: str) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            t = AsyncTally(conn)
            await t.create_counter("a_conn", ["day"])
            assert await t.increment("a_conn", "k", 3) is True
            # committed: another session sees it
            async with await psycopg.AsyncConnection.connect(dsn) as other:
                assert await AsyncTally(other).value("a_conn", "k") == 3
            day = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            series = await t.series("a_conn", "k", "day", day - timedelta(days=1), day + timedelta(days=1))
            assert series == [Bucket(day, 3)]  # pending increments count too
            with pytest.raises(psycopg.ProgrammingError):
                await t.compact()  # not in autocommit mode
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            t = AsyncTally(conn)
            await t.compact()
            assert await t.value("a_conn", "k") == 3
            series = await t.series("a_conn", "k", "day", day - timedelta(days=1), day + timedelta(days=1))
            assert series == [Bucket(day, 3)]

    asyncio.run(run())


def test_errors_surface_with_their_sqlstate(dsn: str) -> None:
    async def run() -> None:
        async with await _pool(dsn) as pool:
            t = AsyncTally(pool)
            with pytest.raises(psycopg.errors.UndefinedObject) as exc:
                await t.increment("no_such_counter", "k")
            assert "tally.create_counter" in (exc.value.diag.message_hint or "")

    asyncio.run(run())


def test_the_constructor_does_no_io() -> None:
    class Exploding:
        def __getattr__(self, name: str):
            raise AssertionError(f"constructor touched the source: {name}")

    AsyncTally(Exploding())  # type: ignore[arg-type]


def test_event_ids_make_a_replay_a_no_op(dsn: str) -> None:
    async def run() -> None:
        async with await _pool(dsn) as pool:
            t = AsyncTally(pool)
            await t.create_counter("a_orders", ["day"])
            assert await t.increment("a_orders", "eu", 5, event_id="order-1") is True
            assert await t.increment("a_orders", "eu", 5, event_id="order-1") is False
            batch = (["a_orders"] * 2, ["eu", "us"], [5, 7])
            assert await t.increment_many(*batch, event_ids=["order-1", "o2"]) == 1
            assert await t.increment_many(*batch, event_ids=["order-1", "o2"]) == 0
            assert (await t.value("a_orders", "eu"), await t.value("a_orders", "us")) == (5, 7)

    asyncio.run(run())
