# The source of tally/client.py: edit this file, then run scripts/async_to_sync.py.  # sync:
"""tally's async client: each method is one call of one SQL function, over
a caller's ``AsyncConnectionPool`` or ``AsyncConnection`` (the statements:
``tally._sql``), or on Citus with routing, over connections of its own to
the node that holds the key (``tally.routing``)."""

from __future__ import annotations

# sync: import weakref
# sync: from collections.abc import Callable, Iterator, Sequence
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence  # sync:
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from types import TracebackType
from typing import TypeVar

import psycopg
from psycopg.rows import class_row
from psycopg_pool import AsyncConnectionPool

from tally import _sql
from tally._coalescer_async import AsyncCoalescer
from tally._concurrency import ALock
from tally._router_async import AsyncRouter
from tally._sql import Bucket, KeyValue
from tally.coalesce import MAX_BATCH, GroupCommit, GroupCommitStats, check
from tally.routing import PartialBatchError, Routing

__all__ = [
    "AsyncSource",
    "AsyncTally",
    "Bucket",
    "GroupCommit",
    "GroupCommitStats",
    "KeyValue",
    "PartialBatchError",
    "Routing",
]

AsyncSource = AsyncConnectionPool | psycopg.AsyncConnection
T = TypeVar("T")


class AsyncTally:
    """tally over a caller-owned ``AsyncConnectionPool`` or ``AsyncConnection``.

    No DDL and no I/O in the constructor. Methods without ``_tx`` run in their
    own transaction (through the pool, or a transaction block on the given
    connection); the ``*_tx`` variants run on the caller's connection, inside
    whatever transaction the caller has open, so an increment commits or rolls
    back with the caller's own business write. A single connection is used by
    one task at a time.

    With ``group_commit=GroupCommit(...)``, ``increment()`` calls from many
    tasks are sent together, one transaction per short window, by a
    background task started by the first call (see ``tally.coalesce``);
    each call still returns only once its increment committed. ``aclose()``
    (or leaving its ``async with`` block) sends what is pending and stops that
    task; the pool or connection stays the caller's.

    With ``routing=Routing(...)``, on a distributed install (Citus), each
    increment, each node's part of a batch and each per-key read goes to the
    node that holds its key, on connections this client opens to that node
    with the caller's connection parameters (``tally.routing``); on any other
    install everything goes through the pool or connection as without it.
    ``aclose()`` closes those connections. Off by default (README, "Scaling
    out on Citus").
    """

    def __init__(
        self, source: AsyncSource, group_commit: GroupCommit | None = None, routing: Routing | None = None
    ) -> None:
        self._source = source
        self._lock = ALock()  # serializes a single connection
        self._router: AsyncRouter | None = None
        if routing is not None:
            # (through the source and the lock, not this object: see below)
            self._router = AsyncRouter(routing, partial(_through, source, self._lock), "AsyncTally")
        self._group: AsyncCoalescer | None = None
        if group_commit is not None:
            # The flusher holds the source and the lock, not this object, so a
            # client dropped unclosed can be collected (and, on threads, its
            # finalizer stops the flusher: a thread does not end with a loop).
            if isinstance(source, AsyncConnectionPool):
                connect, hold = source.connection, 0.05  # a pool connection is kept 50 ms for the next batch
            else:
                lock = self._lock
                connect, hold = (lambda: _locked(lock, source)), 0.0  # the connection is shared: give it back at once
            self._group = AsyncCoalescer(connect, group_commit, "AsyncTally.increment", hold, self._router)
            # sync: weakref.finalize(self, self._group.stop_soon)

    async def _run(self, fn: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
        return await _through(self._source, self._lock, fn)

    # -- group commit and routing -------------------------------------------
    async def aclose(self) -> None:
        """Send the increments still pending, then stop the group commit task;
        close the connections routing opened.

        Later ``increment()`` calls raise with group commit; the other methods
        keep working (routing opens connections again). Without group commit
        or routing there is nothing to do."""
        if self._group is not None:
            await self._group.aclose()
        if self._router is not None:
            await self._router.aclose()

    async def __aenter__(self) -> AsyncTally:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def group_commit_stats(self) -> GroupCommitStats | None:
        """Batches, increments and transactions sent by group commit so far (None when it is off)."""
        return self._group.stats() if self._group is not None else None

    async def refresh_routing(self) -> int:
        """Read now where each key's shard is (routing reads it by itself
        every ``Routing.refresh_every`` seconds and after a node could not be
        reached); returns how many nodes calls are routed to (0: none, every
        call goes through the pool or connection). Without routing, 0."""
        if self._router is None:
            return 0
        routes = await self._router.refresh()
        return len(routes.nodes)

    # -- writes -------------------------------------------------------------
    async def create_counter(
        self, name: str, granularities: Sequence[str] | None = None, durable: bool = False, time_zone: str = "UTC"
    ) -> None:
        """Register a counter (tally.create_counter); default granularities minute..month,
        buckets on the wall clock of ``time_zone`` (an IANA name)."""
        await self._run(lambda c: self.create_counter_tx(c, name, granularities, durable, time_zone))

    async def create_counter_tx(
        self,
        conn: psycopg.AsyncConnection,
        name: str,
        granularities: Sequence[str] | None = None,
        durable: bool = False,
        time_zone: str = "UTC",
    ) -> None:
        """create_counter inside the caller's transaction on ``conn``."""
        await conn.execute(_sql.CREATE_COUNTER, _sql.create_counter_args(name, granularities, durable, time_zone))

    async def increment(
        self, counter: str, key: str, delta: int = 1, at: datetime | None = None, event_id: str | None = None
    ) -> bool:
        """Add ``delta`` to ``counter``/``key`` at ``at`` (default now) in its own transaction.

        With ``event_id`` it is applied at most once per counter within the
        idempotency window: a replay returns False and changes nothing.
        With group commit the transaction is shared with other tasks'
        increments; it returns once that transaction committed, and raises
        its error if it failed. With routing it is sent to the key's node.
        """
        if self._group is not None:
            return await self._group.submit(check("AsyncTally.increment", counter, key, delta, at, event_id))
        if self._router is not None:
            (applied,) = await self._router.send(
                [key], lambda c, _: self.increment_tx(c, counter, key, delta, at, event_id), event_id is not None
            )
            return applied
        return await self._run(lambda c: self.increment_tx(c, counter, key, delta, at, event_id))

    async def increment_tx(
        self,
        conn: psycopg.AsyncConnection,
        counter: str,
        key: str,
        delta: int = 1,
        at: datetime | None = None,
        event_id: str | None = None,
    ) -> bool:
        """increment inside the caller's transaction: it counts only if that transaction commits."""
        cur = await conn.execute(_sql.INCREMENT, (counter, key, delta, at, event_id))
        row = await cur.fetchone()
        return bool(row and row[0])

    async def increment_many(
        self,
        counters: Sequence[str],
        keys: Sequence[str],
        deltas: Sequence[int],
        ats: Sequence[datetime] | None = None,
        event_ids: Sequence[str] | None = None,
    ) -> int:
        """A batch of increments, applied all-or-nothing; returns how many were applied.

        With ``event_ids`` (one per element), elements whose id was applied
        before are left out, so replaying a batch applies only what is missing.

        With routing, the batch is split by the node of each key: one call
        per node, each all-or-nothing on its node, one after another. When a
        node's part fails after another's committed, ``PartialBatchError``
        names the elements applied (with event ids, replaying the whole batch
        applies what is missing). ``increment_many_tx`` is never split: a
        batch all-or-nothing across nodes goes there, on a connection of the
        caller's.
        """
        n = len(keys) if isinstance(keys, Sequence) else 0
        if self._router is None or not 0 < n <= MAX_BATCH or not _aligned(n, counters, deltas, ats, event_ids):
            # (arrays of different lengths, or a batch over the limit: the server says so, for all of it)
            return await self._run(lambda c: self.increment_many_tx(c, counters, keys, deltas, ats, event_ids))
        # Before the batch is split: every element as the server would check
        # it, so a bad one refuses the whole batch, as unsplit (only what the
        # server alone knows, an unknown counter or a time out of range, can
        # fail one node's part after another's committed).
        for i in range(n):
            check(
                f"tally.increment_counters: element {i + 1}",
                counters[i],
                keys[i],
                deltas[i],
                ats[i] if ats is not None else None,
                event_ids[i] if event_ids is not None else None,
            )

        def part(c: psycopg.AsyncConnection, idx: list[int]) -> Awaitable[int]:
            return self.increment_many_tx(
                c,
                [counters[i] for i in idx],
                [keys[i] for i in idx],
                [deltas[i] for i in idx],
                [ats[i] for i in idx] if ats is not None else None,
                [event_ids[i] for i in idx] if event_ids is not None else None,
            )

        return sum(await self._router.send(keys, part, event_ids is not None))

    async def increment_many_tx(
        self,
        conn: psycopg.AsyncConnection,
        counters: Sequence[str],
        keys: Sequence[str],
        deltas: Sequence[int],
        ats: Sequence[datetime] | None = None,
        event_ids: Sequence[str] | None = None,
    ) -> int:
        """increment_many inside the caller's transaction on ``conn``."""
        cur = await conn.execute(_sql.INCREMENT_MANY, _sql.increment_many_args(counters, keys, deltas, ats, event_ids))
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    # -- reads --------------------------------------------------------------
    async def value(self, counter: str, key: str) -> int:
        """All-time total of ``counter``/``key``, pending increments included.

        With routing, read on the key's node."""
        if self._router is not None:
            (value,) = await self._router.send([key], lambda c, _: self.value_tx(c, counter, key), True)
            return value
        return await self._run(lambda c: self.value_tx(c, counter, key))

    async def value_tx(self, conn: psycopg.AsyncConnection, counter: str, key: str) -> int:
        """value as seen by the caller's transaction (its own uncommitted increments included)."""
        cur = await conn.execute(_sql.VALUE, (counter, key))
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def values(self, counter: str, keys: Sequence[str]) -> list[KeyValue]:
        """All-time totals of a page of keys in one call (tally.counter_values): one
        KeyValue per key asked for, in the order given, 0 for a key never incremented."""
        return await self._run(lambda c: self.values_tx(c, counter, keys))

    async def values_tx(self, conn: psycopg.AsyncConnection, counter: str, keys: Sequence[str]) -> list[KeyValue]:
        """values inside the caller's transaction on ``conn``."""
        async with conn.cursor(row_factory=class_row(KeyValue)) as cur:
            await cur.execute(_sql.VALUES, (counter, list(keys)))
            return await cur.fetchall()

    async def window(self, counter: str, key: str, start: datetime, end: datetime) -> int:
        """Total of the increments with ``start <= at < end`` (tally.counter_window); the
        bounds lie on bucket boundaries the counter keeps at that age.

        With routing, read on the key's node."""
        if self._router is not None:
            (value,) = await self._router.send([key], lambda c, _: self.window_tx(c, counter, key, start, end), True)
            return value
        return await self._run(lambda c: self.window_tx(c, counter, key, start, end))

    async def window_tx(
        self, conn: psycopg.AsyncConnection, counter: str, key: str, start: datetime, end: datetime
    ) -> int:
        """window inside the caller's transaction on ``conn``."""
        cur = await conn.execute(_sql.WINDOW, (counter, key, start, end))
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def series(self, counter: str, key: str, granularity: str, start: datetime, end: datetime) -> list[Bucket]:
        """Buckets of one granularity between ``start`` and ``end`` (tally.counter_series).

        With routing, read on the key's node."""
        if self._router is not None:
            (buckets,) = await self._router.send(
                [key], lambda c, _: self.series_tx(c, counter, key, granularity, start, end), True
            )
            return buckets
        return await self._run(lambda c: self.series_tx(c, counter, key, granularity, start, end))

    async def series_tx(
        self,
        conn: psycopg.AsyncConnection,
        counter: str,
        key: str,
        granularity: str,
        start: datetime,
        end: datetime,
    ) -> list[Bucket]:
        """series inside the caller's transaction on ``conn``."""
        async with conn.cursor(row_factory=class_row(Bucket)) as cur:
            await cur.execute(_sql.SERIES, (counter, key, granularity, start, end))
            return await cur.fetchall()

    async def top(
        self, counter: str, granularity: str, bucket: datetime | None = None, limit: int = 10
    ) -> list[KeyValue]:
        """The ``limit`` largest keys of one bucket (default: the current one) (tally.top_keys)."""
        return await self._run(lambda c: self.top_tx(c, counter, granularity, bucket, limit))

    async def top_tx(
        self,
        conn: psycopg.AsyncConnection,
        counter: str,
        granularity: str,
        bucket: datetime | None = None,
        limit: int = 10,
    ) -> list[KeyValue]:
        """top inside the caller's transaction on ``conn``."""
        async with conn.cursor(row_factory=class_row(KeyValue)) as cur:
            await cur.execute(_sql.TOP, (counter, granularity, bucket, limit))
            return await cur.fetchall()

    # -- folding ------------------------------------------------------------
    async def compact(self, max_deltas: int = 1_000_000) -> None:
        """CALL tally.compact(): fold everything pending. Needs autocommit (it commits per fold)."""
        if isinstance(self._source, AsyncConnectionPool):
            async with self._source.connection() as conn:
                await conn.set_autocommit(True)
                try:
                    await conn.execute(_sql.COMPACT, (max_deltas,))
                finally:
                    await conn.set_autocommit(False)
        else:
            if not self._source.autocommit:
                raise psycopg.ProgrammingError(
                    "AsyncTally.compact: the connection must be in autocommit mode (tally.compact commits per fold)"
                )
            async with self._lock:
                await self._source.execute(_sql.COMPACT, (max_deltas,))


async def _through(source: AsyncSource, lock: ALock, fn: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
    """``fn(conn)`` through the caller's pool, or in a transaction on its single connection."""
    if isinstance(source, AsyncConnectionPool):
        async with source.connection() as conn:
            return await fn(conn)
    async with lock, source.transaction():
        return await fn(source)


def _aligned(n: int, *arrays: Sequence[object] | None) -> bool:
    """Every array given (not None) has ``n`` elements and can be indexed."""
    return all(a is None or (isinstance(a, Sequence) and len(a) == n) for a in arrays)


@asynccontextmanager
async def _locked(lock: ALock, conn: psycopg.AsyncConnection) -> AsyncIterator[psycopg.AsyncConnection]:
    """A single connection, used by one task at a time."""
    async with lock:
        yield conn
