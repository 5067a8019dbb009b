"""Group commit: the ``increment()`` calls that many threads (``Tally``) or
tasks (``AsyncTally``) of one process make outside a caller's transaction,
sent together as one transaction per short window.

Callers join the open batch and block; one flusher (a thread, or an asyncio
task) takes the batch when it is as large as the last one was, when it holds
``max_batch`` increments, or ``max_delay`` seconds after its first increment,
whichever comes first, and sends it:

- increments without an event id: one ``tally.increment_counters`` call
  (those of one counter and key at now() summed into one row while the sum
  fits in bigint; four rows or fewer as ``tally.increment_counter`` calls in
  one statement, which costs the server less);
- increments with an event id: one statement per counter that calls
  ``tally.increment_counter`` for each element, in event-id order, so every
  caller learns whether its own id was applied (``increment_counters`` only
  returns a count), and a transaction claims ids of one counter only, in the
  order ``tally.increment_counters`` claims them (no two batches can deadlock).

Each of those is its own transaction. A caller returns only after the
transaction holding its increment committed: acknowledged still means
committed. A transaction that fails raises its error in every caller it held,
and nothing of it was applied; except that when the server refuses one
element's input (SQLSTATE class 22, or 42704 for an unknown counter), the
transaction is rolled back and its increments are sent again one per
transaction, so only the caller with the bad input gets the error. What the
client can check without the server (types, empty or oversized keys and event
ids, a delta outside bigint) is refused before the increment joins a batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import errors as e
from psycopg.pq import TransactionStatus

from tally import _sql

__all__ = ["GroupCommit", "GroupCommitStats"]

MAX_BATCH = 100_000  # tally.increment_counters' own limit
BIGINT = (-(2**63), 2**63 - 1)

# One increment: counter, key, delta, at (ISO text, or None for now()), event id.
Item = tuple[str, str, int, str | None, str | None]


@dataclass(frozen=True)
class GroupCommit:
    """How ``Tally(..., group_commit=GroupCommit())`` / ``AsyncTally`` coalesce ``increment()``.

    ``max_delay``: the longest (seconds) an increment waits for others to join
    its batch before the batch is sent. ``max_batch``: the most increments in
    one batch. A batch is also sent as soon as it is as large as the previous
    one (the callers that just returned are back), so a lone caller waits for
    no one and a steady load fills batches without waiting out the delay.
    """

    max_delay: float = 0.002
    max_batch: int = 1_000

    def __post_init__(self) -> None:
        if not 0 <= self.max_delay <= 1:
            raise ValueError(f"GroupCommit: max_delay {self.max_delay!r} is out of range: give 0 to 1 seconds")
        if not 1 <= self.max_batch <= MAX_BATCH:
            raise ValueError(f"GroupCommit: max_batch {self.max_batch!r} is out of range: give 1 to {MAX_BATCH:,}")


@dataclass(frozen=True)
class GroupCommitStats:
    """What the group commit sent so far."""

    batches: int  # batches sent
    increments: int  # increments in them
    transactions: int  # transactions they took (one per batch, one more per counter with event ids)
    largest: int  # increments in the largest batch
    isolated: int  # transactions retried one increment at a time after the server refused an element
    pending: int  # increments waiting for their batch to be sent


class _Batch:
    __slots__ = ("done", "errors", "first_at", "items", "results", "waiters")

    def __init__(self, done: asyncio.Event | None = None) -> None:
        self.items: list[Item] = []
        self.results: list[bool | None] = []  # None: no outcome yet
        self.errors: dict[int, BaseException] = {}
        self.first_at = 0.0
        self.done = done  # asyncio: set once every outcome is known
        self.waiters: list[threading.Lock] = []  # threads: one held lock per caller, released then


# -- what is checked before an increment joins a batch ----------------------------------
def _refuse(cls: type[psycopg.Error], message: str, hint: str) -> psycopg.Error:
    return cls(f"{message}\nHINT:  {hint}")


def check(fn: str, counter: str, key: str, delta: int, at: datetime | None, event_id: str | None) -> Item:
    """The increment as a batch element, or the error the server would give
    (same SQLSTATE) for what can be checked here; what only the server knows
    (an unknown counter, a timestamp out of range) it still refuses itself."""
    for name, value in (("counter", counter), ("key", key)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{fn}: {name} must be str, not {type(value).__name__}")
    if counter is None or counter == "":
        raise _refuse(
            e.NullValueNotAllowed,
            f"{fn}: counter name must not be NULL or empty",
            "pass the name given to tally.create_counter()",
        )
    if key is None or key == "":
        raise _refuse(
            e.NullValueNotAllowed,
            f"{fn}: key must not be NULL or empty",
            "pass the id of the thing being counted, as text (e.g. '42')",
        )
    if len(key) > 128 and len(key.encode()) > 512:
        raise _refuse(
            e.StringDataRightTruncation,
            f"{fn}: key of {len(key.encode())} bytes is over the 512-byte limit",
            "use a shorter key, e.g. an id or a hash of the long value",
        )
    if delta is None:
        raise _refuse(
            e.NullValueNotAllowed,
            f'{fn}: delta for counter "{counter}" must not be NULL',
            "omit it to add 1, or pass a negative delta to subtract",
        )
    if not isinstance(delta, int) or isinstance(delta, bool):
        raise TypeError(f"{fn}: delta must be int, not {type(delta).__name__}")
    if not BIGINT[0] <= delta <= BIGINT[1]:
        raise _refuse(
            e.NumericValueOutOfRange,
            f"{fn}: delta {delta} is out of the bigint range",
            "split it into increments between -2^63 and 2^63-1",
        )
    if at is not None and not isinstance(at, datetime):
        raise TypeError(f"{fn}: at must be a datetime or None, not {type(at).__name__}")
    for name, value in (("counter", counter), ("key", key), ("event id", event_id)):
        if isinstance(value, str) and "\x00" in value:  # psycopg refuses it for the whole batch
            raise _refuse(
                psycopg.DataError,
                f"{fn}: {name} {value[:40]!r} contains a NUL (0x00) character",
                "PostgreSQL text cannot hold NUL: remove it or encode the value (e.g. hex)",
            )
    if event_id is not None:
        if not isinstance(event_id, str):
            raise TypeError(f"{fn}: event_id must be str or None, not {type(event_id).__name__}")
        if event_id == "":
            raise _refuse(
                e.InvalidParameterValue,
                f"{fn}: event id must not be empty",
                "pass a unique id of the event (e.g. a UUID), or None for no deduplication",
            )
        if len(event_id) > 64 and len(event_id.encode()) > 256:
            raise _refuse(
                e.StringDataRightTruncation,
                f"{fn}: event id of {len(event_id.encode())} bytes is over the 256-byte limit",
                "use a shorter id, e.g. a UUID or a hash of the long one",
            )
    # As text, so a naive datetime is read in the session's TimeZone exactly as
    # the single increment's parameter is, and aware and naive ones mix.
    return counter, key, delta, at.isoformat() if at is not None else None, event_id


# -- how a batch is sent -----------------------------------------------------------------
def _groups(items: list[Item]) -> list[list[int]]:
    """Indices of the batch per transaction: those without an event id, then one per counter with event ids."""
    plain: list[int] = []
    by_counter: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        if item[4] is None:
            plain.append(i)
        else:
            by_counter.setdefault(item[0], []).append(i)
    return ([plain] if plain else []) + [by_counter[c] for c in sorted(by_counter)]


SMALL = 4  # up to this many rows, one increment_counter call each beats one increment_counters call


def _statement(items: list[Item]) -> tuple[str, tuple]:
    if items[0][4] is not None:
        counters = [i[0] for i in items]
        keys = [i[1] for i in items]
        deltas = [i[2] for i in items]
        ats = [i[3] for i in items]
        return _sql.INCREMENT_EACH, (counters, keys, deltas, ats, [i[4] for i in items])
    # Increments of one counter and key at now() are one delta row: their
    # sum (while it fits in bigint), counted at the same now() in the same
    # transaction, so every total, bucket and series is the same.
    summed: dict[tuple[str, str], int] = {}
    rows: list[tuple[str, str, int, str | None]] = []
    for counter, key, delta, at, _ in items:
        if at is None:
            total = summed.get((counter, key), 0) + delta
            if BIGINT[0] <= total <= BIGINT[1]:
                summed[(counter, key)] = total
                continue
        rows.append((counter, key, delta, at))
    rows += [(c, k, d, None) for (c, k), d in summed.items()]
    counters, keys, deltas, ats = ([r[j] for r in rows] for j in range(4))
    if len(rows) <= SMALL:
        return _sql.INCREMENT_FEW, (counters, keys, deltas, ats)
    if any(a is not None for a in ats):
        return _sql.INCREMENT_MANY_AT, (counters, keys, deltas, ats)
    return _sql.INCREMENT_MANY, (counters, keys, deltas, None, None)


def _results(items: list[Item], rows: list[tuple]) -> list[bool]:
    if items[0][4] is None:  # increment_counters applies all or raises
        return [True] * len(items)
    applied = [False] * len(items)
    for i, ok in rows:
        applied[i - 1] = bool(ok)
    return applied


def _own_input(exc: BaseException) -> bool:
    """The server refused one element's input (it rolled back the whole transaction)."""
    state = getattr(exc, "sqlstate", None) or ""
    return state.startswith("22") or state == "42704"


class _Refused(Exception):
    """An element's input was refused inside a group's transaction (rolled back on the way out)."""


def _raise_for(batch: _Batch, i: int) -> bool:
    exc = batch.errors.get(i)
    if exc is None:
        return bool(batch.results[i])
    try:
        mine = copy.copy(exc)
    except Exception:
        raise exc from None
    raise mine from exc


def _finish(batch: _Batch, exc: BaseException) -> None:
    """Every increment of the batch without an outcome gets ``exc``."""
    batch.results += [None] * (len(batch.items) - len(batch.results))
    for i, outcome in enumerate(batch.results):
        if outcome is None and i not in batch.errors:
            batch.errors[i] = exc


class _Counts:
    def __init__(self) -> None:
        self.batches = self.increments = self.transactions = self.largest = self.isolated = 0

    def snapshot(self, pending: int) -> GroupCommitStats:
        return GroupCommitStats(self.batches, self.increments, self.transactions, self.largest, self.isolated, pending)


# -- threads ---------------------------------------------------------------------------
_IDLE = _Batch()  # the flusher waited a while for a batch and none came


class Coalescer:
    """The sync group commit: callers block in ``submit``; a daemon thread sends the batches."""

    def __init__(
        self,
        connect: Callable[[], AbstractContextManager[psycopg.Connection]],
        config: GroupCommit,
        fn: str,
        hold: float = 0.0,
    ):
        self._connect, self._config, self._fn = connect, config, fn
        self._hold = hold  # how long to keep a connection for the next batch
        self._cond = threading.Condition(threading.Lock())
        self._open = _Batch()
        self._full: deque[_Batch] = deque()  # batches that reached max_batch, oldest first
        self._target = 1  # size of the last batch: send as soon as the next is as large
        self._closing = False
        self._thread: threading.Thread | None = None
        self._counts = _Counts()

    def stats(self) -> GroupCommitStats:
        with self._cond:
            return self._counts.snapshot(len(self._open.items) + sum(len(b.items) for b in self._full))

    def submit(self, item: Item) -> bool:
        with self._cond:
            if self._closing:
                raise psycopg.ProgrammingError(f"{self._fn}: this client is closed (group commit has stopped)")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="tally-group-commit", daemon=True)
                self._thread.start()
            batch = self._open
            i = len(batch.items)
            batch.items.append(item)
            waiter = threading.Lock()
            waiter.acquire()
            batch.waiters.append(waiter)
            if i + 1 >= self._config.max_batch:
                self._full.append(batch)
                self._open = _Batch()
                self._cond.notify()
            elif i == 0:
                batch.first_at = time.monotonic()
                self._cond.notify()
            elif i + 1 >= self._target:
                self._cond.notify()
        waiter.acquire()  # released by the flusher once the outcome is known
        return _raise_for(batch, i)

    def close(self) -> None:
        """Send what is pending, then stop the flusher thread (idempotent)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def stop_soon(self) -> None:
        """Let the flusher end after what is pending, without waiting (from a finalizer)."""
        with self._cond:
            self._closing = True
            self._cond.notify()

    def _next(self, idle: float | None = None) -> _Batch | None:
        """The next batch to send: None once closed and drained, _IDLE if
        none began within ``idle`` seconds."""
        with self._cond:
            while not self._full:
                n = len(self._open.items)
                if n and (self._closing or n >= self._target):
                    break
                if not n:
                    if self._closing:
                        return None
                    if not self._cond.wait(idle) and not self._open.items:
                        return _IDLE
                    continue
                left = self._open.first_at + self._config.max_delay - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._full:
                batch = self._full.popleft()
            else:
                batch, self._open = self._open, _Batch()
            self._target = len(batch.items)
            return batch

    def _loop(self) -> None:
        batch = self._next()
        while batch is not None:
            try:
                # One connection while batches keep coming; given back when
                # none began for ``hold`` seconds, or after an error.
                with self._connect() as conn:
                    while batch is not None and batch is not _IDLE:
                        ok = self._flush(conn, batch)
                        batch = self._next(self._hold) if ok else _IDLE
            except BaseException as exc:  # the connection could not be had: never leave a caller waiting
                if batch is not None and batch is not _IDLE:
                    _finish(batch, exc)
                    self._release(batch)
            batch = self._next()

    @staticmethod
    def _release(batch: _Batch) -> None:
        for waiter in batch.waiters:
            waiter.release()
        batch.waiters.clear()

    def _flush(self, conn: psycopg.Connection, batch: _Batch) -> bool:
        """Send one batch on ``conn`` and wake its callers; False if ``conn`` should be given back."""
        batch.results = [None] * len(batch.items)
        groups = _groups(batch.items)
        isolated = 0
        ok = True
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                raise psycopg.ProgrammingError(
                    f"{self._fn}: the connection has a transaction open; group commit needs it idle"
                    " (commit it, use autocommit, or pass a ConnectionPool)"
                )
            # Each group is one statement in autocommit: its own transaction,
            # one round trip; it returns after its COMMIT.
            restore = not conn.autocommit
            conn.autocommit = True
            try:
                for idx in groups:
                    isolated += self._send(conn, batch, idx)
            finally:
                if restore:
                    with contextlib.suppress(psycopg.Error):
                        conn.autocommit = False
            ok = not batch.errors
        except BaseException as exc:
            _finish(batch, exc)
            ok = False
        self._release(batch)
        with self._cond:
            c = self._counts
            c.batches += 1
            c.increments += len(batch.items)
            c.transactions += len(groups)
            c.largest = max(c.largest, len(batch.items))
            c.isolated += isolated
        return ok

    @staticmethod
    def _send(conn: psycopg.Connection, batch: _Batch, idx: list[int]) -> int:
        """One group, one statement, one transaction (autocommit); returns 1 if
        it had to be sent again one increment at a time."""
        items = [batch.items[i] for i in idx]
        try:
            try:
                rows = conn.execute(*_statement(items)).fetchall()
            except psycopg.Error as exc:
                if len(items) > 1 and _own_input(exc):
                    raise _Refused from exc
                raise
            applied = _results(items, rows)
        except _Refused:  # rolled back: each increment alone, so only the bad one fails
            for i in idx:
                try:
                    row = conn.execute(_sql.INCREMENT, batch.items[i]).fetchone()
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


# -- asyncio ---------------------------------------------------------------------------
class AsyncCoalescer:
    """The asyncio group commit: callers await their batch; one task (on the
    loop of the first caller) sends the batches."""

    def __init__(
        self,
        connect: Callable[[], AbstractAsyncContextManager[psycopg.AsyncConnection]],
        config: GroupCommit,
        fn: str,
        hold: float = 0.0,
    ):
        self._connect, self._config, self._fn = connect, config, fn
        self._hold = hold  # how long to keep a connection for the next batch
        self._open: _Batch | None = None
        self._full: deque[_Batch] = deque()
        self._target = 1
        self._closing = False
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._counts = _Counts()

    def stats(self) -> GroupCommitStats:
        waiting = sum(len(b.items) for b in self._full) + (len(self._open.items) if self._open else 0)
        return self._counts.snapshot(waiting)

    async def submit(self, item: Item) -> bool:
        if self._closing:
            raise psycopg.ProgrammingError(f"{self._fn}: this client is closed (group commit has stopped)")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wake = asyncio.Event()
            self._open = _Batch(asyncio.Event())
            self._task = loop.create_task(self._loop(), name="tally-group-commit")
        batch = self._open
        assert batch is not None and self._wake is not None
        i = len(batch.items)
        batch.items.append(item)
        if i + 1 >= self._config.max_batch:
            self._full.append(batch)
            self._open = _Batch(asyncio.Event())
            self._wake.set()
        elif i == 0:
            batch.first_at = loop.time()
            self._wake.set()
        elif i + 1 >= self._target:
            self._wake.set()
        await batch.done.wait()
        return _raise_for(batch, i)

    async def aclose(self) -> None:
        """Send what is pending, then end the flusher task (idempotent)."""
        self._closing = True
        if self._task is not None:
            assert self._wake is not None
            self._wake.set()
            await self._task

    async def _next(self, idle: float | None = None) -> _Batch | None:
        """The next batch to send: None once closed and drained, _IDLE if
        none began within ``idle`` seconds."""
        wake = self._wake
        assert wake is not None
        loop = asyncio.get_running_loop()
        while not self._full:
            assert self._open is not None
            n = len(self._open.items)
            if n and (self._closing or n >= self._target):
                break
            wake.clear()
            if not n:
                if self._closing:
                    return None
                if idle is None:
                    await wake.wait()
                    continue
                timer = loop.call_later(idle, wake.set)
                try:
                    await wake.wait()
                finally:
                    timer.cancel()
                if not self._open.items and not self._full and not self._closing:
                    return _IDLE
                continue
            left = self._open.first_at + self._config.max_delay - loop.time()
            if left <= 0:
                break
            timer = loop.call_later(left, wake.set)
            try:
                await wake.wait()
            finally:
                timer.cancel()
        if self._full:
            batch = self._full.popleft()
        else:
            assert self._open is not None
            batch, self._open = self._open, _Batch(asyncio.Event())
        self._target = len(batch.items)
        return batch

    async def _loop(self) -> None:
        batch: _Batch | None = None
        try:
            batch = await self._next()
            while batch is not None:
                try:
                    # One connection while batches keep coming (see Coalescer._loop).
                    async with self._connect() as conn:
                        while batch is not None and batch is not _IDLE:
                            ok = await self._flush(conn, batch)
                            batch = await self._next(self._hold) if ok else _IDLE
                except Exception as exc:  # the connection could not be had
                    if batch is not None and batch is not _IDLE and batch.done is not None:
                        _finish(batch, exc)
                        batch.done.set()
                batch = await self._next()
        except BaseException as exc:  # cancelled with the loop: no caller is left waiting
            stopped = psycopg.OperationalError(f"{self._fn}: group commit stopped ({type(exc).__name__})")
            for b in (batch, *self._full, self._open):
                if b is not None and b.done is not None and not b.done.is_set():
                    _finish(b, stopped)
                    b.done.set()
            self._closing = True
            raise

    async def _flush(self, conn: psycopg.AsyncConnection, batch: _Batch) -> bool:
        """Send one batch on ``conn`` and wake its callers; False if ``conn`` should be given back."""
        batch.results = [None] * len(batch.items)
        groups = _groups(batch.items)
        isolated = 0
        ok = True
        try:
            if conn.info.transaction_status != TransactionStatus.IDLE:
                raise psycopg.ProgrammingError(
                    f"{self._fn}: the connection has a transaction open; group commit needs it idle"
                    " (commit it, use autocommit, or pass an AsyncConnectionPool)"
                )
            restore = not conn.autocommit
            await conn.set_autocommit(True)
            try:
                for idx in groups:
                    isolated += await self._send(conn, batch, idx)
            finally:
                if restore:
                    with contextlib.suppress(psycopg.Error):
                        await conn.set_autocommit(False)
            ok = not batch.errors
        except Exception as exc:
            _finish(batch, exc)
            ok = False
        assert batch.done is not None
        batch.done.set()
        c = self._counts
        c.batches += 1
        c.increments += len(batch.items)
        c.transactions += len(groups)
        c.largest = max(c.largest, len(batch.items))
        c.isolated += isolated
        return ok

    @staticmethod
    async def _send(conn: psycopg.AsyncConnection, batch: _Batch, idx: list[int]) -> int:
        items = [batch.items[i] for i in idx]
        try:
            try:
                rows = await (await conn.execute(*_statement(items))).fetchall()
            except psycopg.Error as exc:
                if len(items) > 1 and _own_input(exc):
                    raise _Refused from exc
                raise
            applied = _results(items, rows)
        except _Refused:
            for i in idx:
                try:
                    row = await (await conn.execute(_sql.INCREMENT, batch.items[i])).fetchone()
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


@contextlib.contextmanager
def locked(lock: threading.Lock, conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A single connection, used by one thread at a time."""
    with lock:
        yield conn


@contextlib.asynccontextmanager
async def alocked(lock: asyncio.Lock, conn: psycopg.AsyncConnection) -> AsyncIterator[psycopg.AsyncConnection]:
    """A single async connection, used by one task at a time."""
    async with lock:
        yield conn
