"""Thin synchronous client: each method is one call of one SQL function."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row
from psycopg_pool import ConnectionPool


@dataclass(frozen=True)
class Bucket:
    """One bucket of a series: its UTC start and its value."""

    bucket: datetime
    value: int


@dataclass(frozen=True)
class KeyValue:
    """A key and its value (top_keys)."""

    key: str
    value: int


Source = ConnectionPool | psycopg.Connection


class Tally:
    """tally over a caller-owned connection pool or connection.

    No DDL and no I/O in the constructor. Methods without ``_tx`` run in their
    own transaction (autocommitted through the pool); the ``*_tx`` variants take
    the caller's connection so an increment commits or rolls back with the
    caller's own business write.
    """

    def __init__(self, source: Source) -> None:
        self._source = source

    def _run(self, fn):
        if isinstance(self._source, ConnectionPool):
            with self._source.connection() as conn:
                return fn(conn)
        with self._source.transaction():
            return fn(self._source)

    # -- writes -------------------------------------------------------------
    def create_counter(self, name: str, granularities: Sequence[str] | None = None, durable: bool = False) -> None:
        grans = list(granularities) if granularities is not None else ["minute", "hour", "day", "week", "month"]
        self._run(
            lambda c: c.execute(
                "SELECT tally.create_counter(%s::text, %s::text[], %s::boolean)", (name, grans, durable)
            )
        )

    def increment(self, counter: str, key: str, delta: int = 1, at: datetime | None = None) -> bool:
        return self._run(lambda c: self.increment_tx(c, counter, key, delta, at))

    def increment_tx(
        self, conn: psycopg.Connection, counter: str, key: str, delta: int = 1, at: datetime | None = None
    ) -> bool:
        row = conn.execute(
            "SELECT tally.increment_counter(%s::text, %s::text, %s::bigint, coalesce(%s::timestamptz, now()))",
            (counter, key, delta, at),
        ).fetchone()
        return bool(row and row[0])

    def increment_many(
        self,
        counters: Sequence[str],
        keys: Sequence[str],
        deltas: Sequence[int],
        ats: Sequence[datetime] | None = None,
    ) -> int:
        return self._run(lambda c: self.increment_many_tx(c, counters, keys, deltas, ats))

    def increment_many_tx(
        self,
        conn: psycopg.Connection,
        counters: Sequence[str],
        keys: Sequence[str],
        deltas: Sequence[int],
        ats: Sequence[datetime] | None = None,
    ) -> int:
        row = conn.execute(
            "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
            (list(counters), list(keys), list(deltas), list(ats) if ats is not None else None),
        ).fetchone()
        return int(row[0]) if row else 0

    # -- reads --------------------------------------------------------------
    def value(self, counter: str, key: str) -> int:
        def q(c: psycopg.Connection) -> int:
            row = c.execute("SELECT tally.counter_value(%s::text, %s::text)", (counter, key)).fetchone()
            return int(row[0]) if row else 0

        return self._run(q)

    def series(self, counter: str, key: str, granularity: str, start: datetime, end: datetime) -> list[Bucket]:
        def q(c: psycopg.Connection) -> list[Bucket]:
            with c.cursor(row_factory=class_row(Bucket)) as cur:
                return cur.execute(
                    "SELECT bucket, value FROM tally.counter_series(%s::text, %s::text, %s::text,"
                    " %s::timestamptz, %s::timestamptz)",
                    (counter, key, granularity, start, end),
                ).fetchall()

        return self._run(q)

    def top(self, counter: str, granularity: str, bucket: datetime | None = None, limit: int = 10) -> list[KeyValue]:
        def q(c: psycopg.Connection) -> list[KeyValue]:
            with c.cursor(row_factory=class_row(KeyValue)) as cur:
                return cur.execute(
                    "SELECT key, value FROM tally.top_keys(%s::text, %s::text,"
                    " coalesce(%s::timestamptz, now()), %s::integer)",
                    (counter, granularity, bucket, limit),
                ).fetchall()

        return self._run(q)

    # -- folding ------------------------------------------------------------
    def compact(self, max_deltas: int = 100_000) -> None:
        """CALL tally.compact(): fold everything pending. Needs autocommit (it commits per fold)."""
        if isinstance(self._source, ConnectionPool):
            with self._source.connection() as conn:
                conn.autocommit = True
                try:
                    conn.execute("CALL tally.compact(%s::integer)", (max_deltas,))
                finally:
                    conn.autocommit = False
        else:
            if not self._source.autocommit:
                raise psycopg.ProgrammingError(
                    "Tally.compact: the connection must be in autocommit mode (tally.compact commits per fold)"
                )
            self._source.execute("CALL tally.compact(%s::integer)", (max_deltas,))
