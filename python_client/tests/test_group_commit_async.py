"""Group commit in the asyncio client (`AsyncTally(..., group_commit=...)`):
the same guarantees as the sync one, for tasks. Each test drives its
coroutine with asyncio.run (no plugin)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from tally import AsyncTally, GroupCommit, Tally

TASKS = 16
PER_TASK = 150


async def _pool(dsn: str, **kw) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(dsn, min_size=1, max_size=3, open=False, **kw)
    await pool.open()
    return pool


async def _gather(n: int, fn: Callable[[int], Awaitable[object]]) -> tuple[dict[int, object], dict[int, BaseException]]:
    out = await asyncio.gather(*(fn(i) for i in range(n)), return_exceptions=True)
    return (
        {i: r for i, r in enumerate(out) if not isinstance(r, BaseException)},
        {i: r for i, r in enumerate(out) if isinstance(r, BaseException)},
    )


async def _wait_for(what: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def _wait_blocked(dsn: str, pid: int, n: int) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as probe:
        while True:
            cur = await probe.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s::integer = ANY(pg_blocking_pids(pid))", (pid,)
            )
            if (await cur.fetchone())[0] >= n:
                return
            await asyncio.sleep(0.01)


def test_sixteen_tasks_coalesced_are_exact(dsn: str) -> None:
    async def run() -> None:
        async with await _pool(dsn) as pool:
            t = AsyncTally(pool, group_commit=GroupCommit(max_delay=0.005))
            await t.create_counter("agc_views")
            await t.create_counter("agc_durable", durable=True)

            async def work(n: int) -> None:
                for i in range(PER_TASK):
                    counter = "agc_durable" if i % 4 == 0 else "agc_views"
                    assert await t.increment(counter, f"k{(n + i) % 3}", (n % 3) + 1) is True

            async with t:
                _, errors = await _gather(TASKS, work)
            assert errors == {}
            want: dict[tuple[str, str], int] = {}
            for n in range(TASKS):
                for i in range(PER_TASK):
                    key = ("agc_durable" if i % 4 == 0 else "agc_views", f"k{(n + i) % 3}")
                    want[key] = want.get(key, 0) + (n % 3) + 1
            assert {k: await t.value(*k) for k in want} == want
            s = t.group_commit_stats
            assert s is not None and s.increments == TASKS * PER_TASK and s.pending == 0
            assert s.batches < s.increments / 2 and s.largest > 1, s
            # the flusher task is gone
            assert [x for x in asyncio.all_tasks() if x.get_name() == "tally-group-commit"] == []
            with pytest.raises(psycopg.ProgrammingError, match="closed"):
                await t.increment("agc_views", "k0")

    asyncio.run(run())


def test_on_a_single_async_connection_it_is_serialized(dsn: str) -> None:
    async def run() -> None:
        async with await psycopg.AsyncConnection.connect(dsn) as conn:
            t = AsyncTally(conn, group_commit=GroupCommit())
            await t.create_counter("agc_single")

            async def work(n: int) -> int:
                for _ in range(PER_TASK):
                    assert await t.increment("agc_single", f"k{n % 4}") is True
                return await t.value("agc_single", f"k{n % 4}")

            async with t:
                reads, errors = await _gather(TASKS, work)
            assert errors == {} and all(r > 0 for r in reads.values())
            assert [await t.value("agc_single", f"k{k}") for k in range(4)] == [TASKS * PER_TASK // 4] * 4
            assert conn.autocommit is False
            assert t.group_commit_stats is not None and t.group_commit_stats.largest > 1

    asyncio.run(run())


def test_a_failed_async_batch_raises_in_every_caller_and_applies_nothing(dsn: str) -> None:
    async def run() -> None:
        async with await _pool(dsn, kwargs={"options": "-c statement_timeout=1500"}) as pool:
            t = AsyncTally(pool, group_commit=GroupCommit())
            await t.create_counter("agc_timeout", durable=True)
            async with t, await psycopg.AsyncConnection.connect(dsn) as locker:
                await locker.execute("LOCK TABLE tally.counters IN ACCESS EXCLUSIVE MODE")
                first = asyncio.create_task(t.increment("agc_timeout", "a"))
                await _wait_blocked(dsn, locker.info.backend_pid, 1)
                rest = asyncio.create_task(_gather(TASKS - 1, lambda i: t.increment("agc_timeout", f"k{i}", i + 1)))
                await _wait_for(lambda: t.group_commit_stats.pending == TASKS - 1)  # type: ignore[union-attr]
                results, errors = await rest
                with pytest.raises(psycopg.errors.QueryCanceled):
                    await first
                await locker.rollback()
            assert results == {} and len(errors) == TASKS - 1
            assert all(isinstance(x, psycopg.errors.QueryCanceled) and x.sqlstate == "57014" for x in errors.values())
            s = t.group_commit_stats
            assert s is not None and (s.batches, s.largest) == (2, TASKS - 1)

    asyncio.run(run())
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0
        assert Tally(conn).value("agc_timeout", "a") == 0


def test_async_event_id_replays_and_a_refused_input(dsn: str) -> None:
    """Two tasks per id: True to exactly one; an unknown counter in the same
    batches fails only its own caller."""

    async def run() -> None:
        async with await _pool(dsn) as pool:
            t = AsyncTally(pool, group_commit=GroupCommit(max_delay=0.005))
            await t.create_counter("agc_orders")
            n_ids = 40

            async def work(n: int) -> list[bool]:
                out = []
                for i in range(n_ids):
                    out.append(await t.increment("agc_orders", "eu", 2, event_id=f"o-{n // 2}-{i}"))
                    if n == 5 and i == 20:
                        with pytest.raises(psycopg.errors.UndefinedObject):
                            await t.increment("agc_nope", "eu")
                return out

            async with t:
                results, errors = await _gather(TASKS, work)
            assert errors == {}
            for pair in range(TASKS // 2):
                a, b = results[2 * pair], results[2 * pair + 1]
                assert all(x != y for x, y in zip(a, b, strict=True))  # type: ignore[call-overload]
            assert await t.value("agc_orders", "eu") == 2 * (TASKS // 2) * n_ids

    asyncio.run(run())


def test_aclose_sends_what_is_pending(dsn: str) -> None:
    async def run() -> None:
        async with await _pool(dsn) as pool:
            t = AsyncTally(pool, group_commit=GroupCommit(max_delay=1.0))
            await t.create_counter("agc_close")
            async with await psycopg.AsyncConnection.connect(dsn) as locker:
                await locker.execute("LOCK TABLE tally.counters IN ACCESS EXCLUSIVE MODE")
                first = asyncio.create_task(t.increment("agc_close", "k"))
                await _wait_blocked(dsn, locker.info.backend_pid, 1)
                rest = [asyncio.create_task(t.increment("agc_close", "k")) for _ in range(8)]
                await _wait_for(lambda: t.group_commit_stats.pending == 8)  # type: ignore[union-attr]
                closing = asyncio.create_task(t.aclose())
                await asyncio.sleep(0.05)
                assert not closing.done()
                await locker.rollback()
            await closing
            assert await first is True and [await x for x in rest] == [True] * 8
            assert await t.value("agc_close", "k") == 9
            assert [x for x in asyncio.all_tasks() if x.get_name() == "tally-group-commit"] == []

    asyncio.run(run())
