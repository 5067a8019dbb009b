# Generated from python_client/tally/aio.py by .venv/bin/python scripts/async_to_sync.py: do not edit.
# Edit python_client/tally/aio.py, then run .venv/bin/python scripts/async_to_sync.py (make generate).
"""tally's sync client: each method is one call of one SQL function, over
a caller's ``ConnectionPool`` or ``Connection`` (the statements:
``tally._sql``)."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import TypeVar

import psycopg
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool

from tally import _sql
from tally._coalescer import Coalescer
from tally._concurrency import Lock
from tally._sql import Bucket, KeyValue
from tally.coalesce import GroupCommit, GroupCommitStats, check

__all__ = ["Bucket", "GroupCommit", "GroupCommitStats", "KeyValue", "Source", "Tally"]

Source = ConnectionPool | psycopg.Connection
T = TypeVar("T")


class Tally:
    """tally over a caller-owned ``ConnectionPool`` or ``Connection``.

    No DDL and no I/O in the constructor. Methods without ``_tx`` run in their
    own transaction (through the pool, or a transaction block on the given
    connection); the ``*_tx`` variants run on the caller's connection, inside
    whatever transaction the caller has open, so an increment commits or rolls
    back with the caller's own business write. A single connection is used by
    one thread at a time.

    With ``group_commit=GroupCommit(...)``, ``increment()`` calls from many
    threads are sent together, one transaction per short window, by a
    background thread started by the first call (see ``tally.coalesce``);
    each call still returns only once its increment committed. ``close()``
    (or leaving its ``with`` block) sends what is pending and stops that
    thread; the pool or connection stays the caller's.
    """

    def __init__(self, source: Source, group_commit: GroupCommit | None = None) -> None:
        self._source = source
        self._lock = Lock()  # serializes a single connection
        self._group: Coalescer | None = None
        if group_commit is not None:
            # The flusher holds the source and the lock, not this object, so a
            # client dropped unclosed can be collected (and, on threads, its
            # finalizer stops the flusher: a thread does not end with a loop).
            if isinstance(source, ConnectionPool):
                connect, hold = source.connection, 0.05  # a pool connection is kept 50 ms for the next batch
            else:
                lock = self._lock
                connect, hold = (lambda: _locked(lock, source)), 0.0  # the connection is shared: give it back at once
            self._group = Coalescer(connect, group_commit, "Tally.increment", hold)
            weakref.finalize(self, self._group.stop_soon)

    def _run(self, fn: Callable[[psycopg.Connection], T]) -> T:
        if isinstance(self._source, ConnectionPool):
            with self._source.connection() as conn:
                return fn(conn)
        with self._lock, self._source.transaction():
            return fn(self._source)

    # -- group commit ---------------------------------------------------------
    def close(self) -> None:
        """Send the increments still pending, then stop the group commit thread.

        Later ``increment()`` calls raise; the other methods keep working.
        Without group commit there is nothing to do."""
        if self._group is not None:
            self._group.close()

    def __enter__(self) -> Tally:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def group_commit_stats(self) -> GroupCommitStats | None:
        """Batches, increments and transactions sent by group commit so far (None when it is off)."""
        return self._group.stats() if self._group is not None else None

    # -- writes -------------------------------------------------------------
    def create_counter(self, name: str, granularities: Sequence[str] | None = None, durable: bool = False) -> None:
        """Register a counter (tally.create_counter); default granularities minute..month."""
        self._run(lambda c: self.create_counter_tx(c, name, granularities, durable))

    def create_counter_tx(
        self,
        conn: psycopg.Connection,
        name: str,
        granularities: Sequence[str] | None = None,
        durable: bool = False,
    ) -> None:
        """create_counter inside the caller's transaction on ``conn``."""
        conn.execute(_sql.CREATE_COUNTER, _sql.create_counter_args(name, granularities, durable))

    def increment(
        self, counter: str, key: str, delta: int = 1, at: datetime | None = None, event_id: str | None = None
    ) -> bool:
        """Add ``delta`` to ``counter``/``key`` at ``at`` (default now) in its own transaction.

        With ``event_id`` it is applied at most once per counter within the
        idempotency window: a replay returns False and changes nothing.
        With group commit the transaction is shared with other threads'
        increments; it returns once that transaction committed, and raises
        its error if it failed.
        """
        if self._group is not None:
            return self._group.submit(check("Tally.increment", counter, key, delta, at, event_id))
        return self._run(lambda c: self.increment_tx(c, counter, key, delta, at, event_id))

    def increment_tx(
        self,
        conn: psycopg.Connection,
        counter: str,
        key: str,
        delta: int = 1,
        at: datetime | None = None,
        event_id: str | None = None,
    ) -> bool:
        """increment inside the caller's transaction: it counts only if that transaction commits."""
        cur = conn.execute(_sql.INCREMENT, (counter, key, delta, at, event_id))
        row = cur.fetchone()
        return bool(row and row[0])

    def increment_many(
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
        """
        return self._run(lambda c: self.increment_many_tx(c, counters, keys, deltas, ats, event_ids))

    def increment_many_tx(
        self,
        conn: psycopg.Connection,
        counters: Sequence[str],
        keys: Sequence[str],
        deltas: Sequence[int],
        ats: Sequence[datetime] | None = None,
        event_ids: Sequence[str] | None = None,
    ) -> int:
        """increment_many inside the caller's transaction on ``conn``."""
        cur = conn.execute(_sql.INCREMENT_MANY, _sql.increment_many_args(counters, keys, deltas, ats, event_ids))
        row = cur.fetchone()
        return int(row[0]) if row else 0

    # -- reads --------------------------------------------------------------
    def value(self, counter: str, key: str) -> int:
        """All-time total of ``counter``/``key``, pending increments included."""
        return self._run(lambda c: self.value_tx(c, counter, key))

    def value_tx(self, conn: psycopg.Connection, counter: str, key: str) -> int:
        """value as seen by the caller's transaction (its own uncommitted increments included)."""
        cur = conn.execute(_sql.VALUE, (counter, key))
        row = cur.fetchone()
        return int(row[0]) if row else 0

    def series(self, counter: str, key: str, granularity: str, start: datetime, end: datetime) -> list[Bucket]:
        """Buckets of one granularity between ``start`` and ``end`` (tally.counter_series)."""
        return self._run(lambda c: self.series_tx(c, counter, key, granularity, start, end))

    def series_tx(
        self,
        conn: psycopg.Connection,
        counter: str,
        key: str,
        granularity: str,
        start: datetime,
        end: datetime,
    ) -> list[Bucket]:
        """series inside the caller's transaction on ``conn``."""
        with conn.cursor(row_factory=class_row(Bucket)) as cur:
            cur.execute(_sql.SERIES, (counter, key, granularity, start, end))
            return cur.fetchall()

    def top(self, counter: str, granularity: str, bucket: datetime | None = None, limit: int = 10) -> list[KeyValue]:
        """The ``limit`` largest keys of one bucket (default: the current one) (tally.top_keys)."""
        return self._run(lambda c: self.top_tx(c, counter, granularity, bucket, limit))

    def top_tx(
        self,
        conn: psycopg.Connection,
        counter: str,
        granularity: str,
        bucket: datetime | None = None,
        limit: int = 10,
    ) -> list[KeyValue]:
        """top inside the caller's transaction on ``conn``."""
        with conn.cursor(row_factory=class_row(KeyValue)) as cur:
            cur.execute(_sql.TOP, (counter, granularity, bucket, limit))
            return cur.fetchall()

    # -- folding ------------------------------------------------------------
    def compact(self, max_deltas: int = 100_000) -> None:
        """CALL tally.compact(): fold everything pending. Needs autocommit (it commits per fold)."""
        if isinstance(self._source, ConnectionPool):
            with self._source.connection() as conn:
                conn.set_autocommit(True)
                try:
                    conn.execute(_sql.COMPACT, (max_deltas,))
                finally:
                    conn.set_autocommit(False)
        else:
            if not self._source.autocommit:
                raise psycopg.ProgrammingError(
                    "Tally.compact: the connection must be in autocommit mode (tally.compact commits per fold)"
                )
            with self._lock:
                self._source.execute(_sql.COMPACT, (max_deltas,))


@contextmanager
def _locked(lock: Lock, conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """A single connection, used by one thread at a time."""
    with lock:
        yield conn
