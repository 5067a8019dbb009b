# The source of tally/_coalescer.py: edit this file, then run scripts/async_to_sync.py.  # sync:
"""The flusher of ``AsyncTally``'s group commit: callers wait in ``submit``
until the transaction holding their increment ended; one background task,
started by the first call, sends the batches (what it sends and how, and
what each caller gets: ``tally.coalesce``; with routing, each batch split by
node: ``tally.routing``)."""

from __future__ import annotations

# sync: from collections.abc import Callable
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable  # sync:
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

import psycopg
from psycopg.pq import TransactionStatus

from tally import _sql
from tally._concurrency import AEvent, AStateLock, AWorker, ajoin, aspawn
from tally._router_async import AsyncRouter
from tally.coalesce import (
    Batch,
    Counts,
    GroupCommit,
    GroupCommitStats,
    Item,
    Refused,
    groups,
    own_input,
    results,
    statement,
)
from tally.routing import MOVED, PartialBatchError

__all__ = ["AsyncCoalescer"]

T = TypeVar("T")


class _Batch(Batch):
    __slots__ = ("done",)

    def __init__(self) -> None:
        super().__init__()
        self.done = AEvent()  # set once every outcome is known


_IDLE = _Batch()  # the flusher waited a while for a batch and none came


class AsyncCoalescer:
    """The group commit of ``AsyncTally``: callers wait in ``submit``; one
    background task, started by the first call, sends the batches (with
    ``router``, each batch's part for each node on that node)."""

    def __init__(
        self,
        connect: Callable[[], AbstractAsyncContextManager[psycopg.AsyncConnection]],
        config: GroupCommit,
        fn: str,
        hold: float = 0.0,
        router: AsyncRouter | None = None,
    ) -> None:
        self._connect, self._config, self._fn = connect, config, fn
        self._hold = hold  # how long to keep a connection for the next batch
        self._router = router
        self._state = AStateLock()  # over what follows
        self._wake = AEvent()  # set when the flusher has something new to look at
        self._open = _Batch()
        self._full: deque[_Batch] = deque()  # batches that reached max_batch, oldest first
        self._target = 1  # size of the last batch: send as soon as the next is as large
        self._closing = False
        self._flusher: AWorker | None = None
        self._counts = Counts()

    def stats(self) -> GroupCommitStats:
        with self._state:
            return self._counts.snapshot(len(self._open.items) + sum(len(b.items) for b in self._full))

    async def submit(self, item: Item) -> bool:
        """Add ``item`` to the open batch; its outcome once the batch was sent."""
        with self._state:
            if self._closing:
                raise psycopg.ProgrammingError(f"{self._fn}: this client is closed (group commit has stopped)")
            if self._flusher is None:
                self._flusher = aspawn(self._loop, "tally-group-commit")
            batch = self._open
            i = len(batch.items)
            batch.items.append(item)
            if i + 1 >= self._config.max_batch:
                self._full.append(batch)
                self._open = _Batch()
                self._wake.set()
            elif i == 0:
                batch.first_at = time.monotonic()
                self._wake.set()
            elif i + 1 >= self._target:
                self._wake.set()
        await batch.done.wait()
        return batch.outcome(i)

    async def aclose(self) -> None:
        """Send what is pending, then stop the flusher (idempotent)."""
        self.stop_soon()
        with self._state:
            flusher = self._flusher
        if flusher is not None:
            await ajoin(flusher)

    def stop_soon(self) -> None:
        """Let the flusher stop once what is pending is sent, without waiting for it."""
        with self._state:
            self._closing = True
            self._wake.set()

    async def _next(self, idle: float | None = None) -> _Batch | None:
        """The next batch to send: None once closed and drained, _IDLE if
        none began within ``idle`` seconds."""
        idled = False
        while True:
            with self._state:
                n = len(self._open.items)
                left = self._open.first_at + self._config.max_delay - time.monotonic()
                if self._full or (n and (self._closing or n >= self._target or left <= 0)):
                    if self._full:
                        batch = self._full.popleft()
                    else:
                        batch, self._open = self._open, _Batch()
                    self._target = len(batch.items)
                    return batch
                if not n and (self._closing or idled):
                    return None if self._closing else _IDLE
                self._wake.clear()
            idled = not await self._wake.wait(left if n else idle) and not n

    async def _loop(self) -> None:
        batch: _Batch | None = None
        try:
            batch = await self._next()
            while batch is not None:
                try:
                    if self._router is not None and (await self._router.routes()).on:
                        await self._flush_routed(batch)
                        batch = await self._next()
                        continue
                    # One connection while batches keep coming; given back when
                    # none began for ``hold`` seconds, or after an error.
                    async with self._connect() as conn:
                        while batch is not None and batch is not _IDLE:
                            ok = await self._flush(conn, batch)
                            batch = await self._next(self._hold) if ok else _IDLE
                except Exception as exc:  # no connection (or no metadata) could be had: its callers get why
                    if batch is not None and batch is not _IDLE and not batch.done.is_set():
                        batch.fail(exc)
                        batch.done.set()
                batch = await self._next()
        except BaseException as exc:
            # Anything else (a cancellation, say) stops the flusher itself: every
            # caller still waiting gets an error, none waits forever, and later
            # calls are refused.
            stopped = psycopg.OperationalError(f"{self._fn}: group commit stopped ({type(exc).__name__})")
            with self._state:
                self._closing = True
                waiting = [b for b in (batch, *self._full, self._open) if b is not None and b is not _IDLE]
            for b in waiting:
                if not b.done.is_set():
                    b.fail(stopped)
                    b.done.set()
            raise

    async def _flush(self, conn: psycopg.AsyncConnection, batch: _Batch) -> bool:
        """Send one batch on ``conn`` and wake its callers; False if ``conn`` should be given back."""
        batch.results = [None] * len(batch.items)
        parts = groups(batch.items)
        isolated = 0
        try:
            isolated = await self._send_part(conn, batch, parts)
        except Exception as exc:
            batch.fail(exc)
        with self._state:
            self._counts.add(len(batch.items), len(parts), isolated)
        batch.done.set()
        return not batch.errors

    async def _flush_routed(self, batch: _Batch) -> None:
        """Send one batch, each node's part on that node, and wake its callers."""
        assert self._router is not None
        batch.results = [None] * len(batch.items)
        transactions = isolated = 0

        async def part(conn: psycopg.AsyncConnection, idx: list[int]) -> int:
            nonlocal transactions
            parts = [[idx[j] for j in g] for g in groups([batch.items[i] for i in idx])]
            transactions += len(parts)
            return await self._send_part(conn, batch, parts)

        try:
            # A node that cannot be reached is tried again once where the
            # metadata read again places its keys (nothing was sent); any
            # other error is its callers' (``_send`` keeps each group's).
            isolated = sum(await self._router.send([item[1] for item in batch.items], part, False, self._through))
        except PartialBatchError as exc:
            batch.fail(exc.error)
        except Exception as exc:
            batch.fail(exc)
        if any(getattr(exc, "sqlstate", None) in MOVED for exc in batch.errors.values()):
            self._router.expire()
        with self._state:
            self._counts.add(len(batch.items), transactions, isolated)
        batch.done.set()

    async def _through(self, fn: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
        """``fn(conn)`` on a connection of the caller's (keys routing leaves there)."""
        async with self._connect() as conn:
            return await fn(conn)

    async def _send_part(self, conn: psycopg.AsyncConnection, batch: _Batch, parts: list[list[int]]) -> int:
        """The groups ``parts`` of ``batch``, each one statement in autocommit
        on ``conn``; returns how many had to be sent one increment at a time."""
        if conn.info.transaction_status != TransactionStatus.IDLE:
            raise psycopg.ProgrammingError(
                f"{self._fn}: the connection has a transaction open; group commit needs it idle"
                " (commit it, use autocommit, or pass a pool: AsyncConnectionPool)"
            )
        # Each group is one statement in autocommit: its own transaction,
        # one round trip; it returns after its COMMIT.
        isolated = 0
        restore = not conn.autocommit
        await conn.set_autocommit(True)
        try:
            for idx in parts:
                isolated += await self._send(conn, batch, idx)
        finally:
            if restore:
                with contextlib.suppress(psycopg.Error):
                    await conn.set_autocommit(False)
        return isolated

    @staticmethod
    async def _send(conn: psycopg.AsyncConnection, batch: _Batch, idx: list[int]) -> int:
        """One group, one statement, one transaction (autocommit); returns 1 if
        it had to be sent again one increment at a time."""
        items = [batch.items[i] for i in idx]
        try:
            try:
                cur = await conn.execute(*statement(items))
                rows = await cur.fetchall()
            except psycopg.Error as exc:
                if len(items) > 1 and own_input(exc):
                    raise Refused from exc
                raise
            applied = results(items, rows)
        except Refused:  # rolled back: each increment alone, so only the bad one fails
            for i in idx:
                try:
                    cur = await conn.execute(_sql.INCREMENT, batch.items[i])
                    row = await cur.fetchone()
                    batch.results[i] = bool(row and row[0])
                except Exception as exc:
                    batch.errors[i] = exc
            return 1
        except Exception as exc:
            for i in idx:
                batch.errors[i] = exc
            return 0
        for i, ok in zip(idx, applied, strict=True):
            batch.results[i] = ok
        return 0
