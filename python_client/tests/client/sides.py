"""The two sides every client test runs on, behind one blocking face.

``SyncSide`` gives psycopg's ``ConnectionPool`` and ``Connection`` and
``Tally`` themselves. ``AsyncSide`` runs an event loop in a thread of its
own and gives ``AsyncConnectionPool``, ``AsyncConnection`` and
``AsyncTally`` through ``Blocking``: each call runs on that loop, as a
task of its own, and the caller waits for its result or its error. A test
is then written once, as sync code; the threads it starts are the
application's threads on the sync side and its concurrent tasks on the
async side (16 threads calling ``increment()`` are 16 tasks awaiting it).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool
from tally import AsyncTally, GroupCommit, Routing, Tally

FLUSHER = "tally-group-commit"  # the name of group commit's thread or task
CALL_TIMEOUT = 300  # no call of a test waits longer: a hang fails the test


class SyncSide:
    name = "sync"
    client = "Tally"

    def tally(self, source: Any, group_commit: GroupCommit | None = None, routing: Routing | None = None) -> Tally:
        return Tally(source, group_commit=group_commit, routing=routing)

    def pool(self, dsn: str, **kwargs: Any) -> ConnectionPool:
        """A pool that opens when its ``with`` block begins."""
        return ConnectionPool(dsn, open=False, **kwargs)

    def connect(self, dsn: str, **kwargs: Any) -> psycopg.Connection:
        return psycopg.connect(dsn, **kwargs)

    def flushers(self) -> list[str]:
        """The group commit flushers running now."""
        return [th.name for th in threading.enumerate() if th.name == FLUSHER]


class AsyncSide:
    name = "async"
    client = "AsyncTally"

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-event-loop", daemon=True)
        self._thread.start()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` run on the loop, awaited if it is awaitable."""

        async def run() -> Any:
            out = fn(*args, **kwargs)
            return await out if inspect.isawaitable(out) else out

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=CALL_TIMEOUT)

    def tally(self, source: Any, group_commit: GroupCommit | None = None, routing: Routing | None = None) -> Blocking:
        return Blocking(self, AsyncTally(unwrap(source), group_commit=group_commit, routing=routing))

    def pool(self, dsn: str, **kwargs: Any) -> Blocking:
        """A pool that opens when its ``with`` block begins."""
        return Blocking(self, self.call(lambda: AsyncConnectionPool(dsn, open=False, **kwargs)))

    def connect(self, dsn: str, **kwargs: Any) -> Blocking:
        return Blocking(self, self.call(psycopg.AsyncConnection.connect, dsn, **kwargs))

    def flushers(self) -> list[str]:
        """The group commit flushers running now."""
        return self.call(lambda: [t.get_name() for t in asyncio.all_tasks() if t.get_name() == FLUSHER])

    def close(self) -> None:
        """End the loop as asyncio.run ends its own: what still runs is cancelled."""

        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            self.call(cancel_the_rest)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=60)
            self.loop.close()


Side = SyncSide | AsyncSide


def unwrap(value: Any) -> Any:
    return object.__getattribute__(value, "_obj") if isinstance(value, Blocking) else value


class Blocking:
    """A blocking face of an object of ``AsyncSide``'s loop: its methods run
    on the loop and are awaited there; ``x.close()`` is ``x.aclose()`` where
    only that exists; ``with x`` is ``async with x``; what is returned that
    is itself an async context manager (a connection, a cursor, a
    transaction) gets the same face."""

    __slots__ = ("_obj", "_side")

    def __init__(self, side: AsyncSide, obj: Any) -> None:
        object.__setattr__(self, "_side", side)
        object.__setattr__(self, "_obj", obj)

    def _wrap(self, value: Any) -> Any:
        return Blocking(self._side, value) if hasattr(type(value), "__aenter__") else value

    def __getattr__(self, name: str) -> Any:
        side, obj = self._side, self._obj
        if not hasattr(type(obj), name) and hasattr(type(obj), "a" + name):
            name = "a" + name
        value = side.call(getattr, obj, name)  # a property is read on the loop too
        if not callable(value):
            return self._wrap(value)

        def method(*args: Any, **kwargs: Any) -> Any:
            args = tuple(unwrap(a) for a in args)
            return self._wrap(side.call(value, *args, **{k: unwrap(v) for k, v in kwargs.items()}))

        return method

    def __enter__(self) -> Any:
        return self._wrap(self._side.call(self._obj.__aenter__))

    def __exit__(self, *exc: Any) -> Any:
        return self._side.call(self._obj.__aexit__, *exc)


# -- what the tests share --------------------------------------------------------------
def run_threads(n: int, fn: Callable[[int], object]) -> tuple[dict[int, object], dict[int, BaseException]]:
    """fn(i) in n threads; what each returned or raised."""
    results: dict[int, object] = {}
    errors: dict[int, BaseException] = {}

    def run(i: int) -> None:
        try:
            results[i] = fn(i)
        except BaseException as exc:
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
        assert not th.is_alive()
    return results, errors


def wait_for(what: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@contextmanager
def counters_locked(dsn: str) -> Iterator[Callable[[int], None]]:
    """Hold ACCESS EXCLUSIVE on tally.counters: every increment statement waits
    until the block ends. Yields wait_blocked(n): wait until n backends wait on it."""
    with psycopg.connect(dsn) as locker:
        locker.execute("LOCK TABLE tally.counters IN ACCESS EXCLUSIVE MODE")
        pid = locker.info.backend_pid

        def wait_blocked(n: int) -> None:
            with psycopg.connect(dsn, autocommit=True) as probe:
                wait_for(
                    lambda: (
                        probe.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE %s::integer = ANY(pg_blocking_pids(pid))",
                            (pid,),
                        ).fetchone()[0]
                        >= n
                    )
                )

        yield wait_blocked
        locker.commit()


@pytest.fixture(params=["sync", "async"])
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    """A test run once with the sync client and once with the async one
    (imported by the suites' conftest or test modules that use it)."""
    if request.param == "sync":
        yield SyncSide()
        return
    s = AsyncSide()
    try:
        yield s
    finally:
        s.close()
