"""Group commit: the ``increment()`` calls that many threads (``Tally``) or
tasks (``AsyncTally``) of one process make outside a caller's transaction,
sent together as one transaction per short window.

Callers join the open batch and wait; one flusher (a thread, or an asyncio
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

This module is what both flushers share: the settings, the checks, how a
batch is split into transactions and statements, and each caller's outcome.
The flusher itself is written once, for asyncio, in ``tally._coalescer_async``;
the threaded one, ``tally._coalescer``, is generated from it
(``scripts/async_to_sync.py``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import errors as e

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
def groups(items: list[Item]) -> list[list[int]]:
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


def statement(items: list[Item]) -> tuple[str, tuple]:
    """One group's statement and its parameters."""
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


def results(items: list[Item], rows: list[tuple]) -> list[bool]:
    """What each increment of a group returns, from its statement's rows."""
    if items[0][4] is None:  # increment_counters applies all or raises
        return [True] * len(items)
    applied = [False] * len(items)
    for i, ok in rows:
        applied[i - 1] = bool(ok)
    return applied


def own_input(exc: BaseException) -> bool:
    """The server refused one element's input (it rolled back the whole transaction)."""
    state = getattr(exc, "sqlstate", None) or ""
    return state.startswith("22") or state == "42704"


class Refused(Exception):
    """An element's input was refused inside a group's transaction (rolled back on the way out)."""


# -- what each caller gets ----------------------------------------------------------------
class Batch:
    """Increments sent together and each one's outcome (a flusher adds how its callers wait)."""

    __slots__ = ("errors", "first_at", "items", "results")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.results: list[bool | None] = []  # None: no outcome yet
        self.errors: dict[int, BaseException] = {}
        self.first_at = 0.0  # time.monotonic() of its first increment

    def outcome(self, i: int) -> bool:
        """What increment ``i`` returns, or its error raised (a copy of its own, chained to the shared one)."""
        exc = self.errors.get(i)
        if exc is None:
            return bool(self.results[i])
        try:
            mine = copy.copy(exc)
        except Exception:
            raise exc from None
        raise mine from exc

    def fail(self, exc: BaseException) -> None:
        """Every increment of the batch without an outcome gets ``exc``."""
        self.results += [None] * (len(self.items) - len(self.results))
        for i, outcome in enumerate(self.results):
            if outcome is None and i not in self.errors:
                self.errors[i] = exc


class Counts:
    """What the flusher sent so far (GroupCommitStats without the pending increments)."""

    def __init__(self) -> None:
        self.batches = self.increments = self.transactions = self.largest = self.isolated = 0

    def add(self, increments: int, transactions: int, isolated: int) -> None:
        self.batches += 1
        self.increments += increments
        self.transactions += transactions
        self.largest = max(self.largest, increments)
        self.isolated += isolated

    def snapshot(self, pending: int) -> GroupCommitStats:
        return GroupCommitStats(self.batches, self.increments, self.transactions, self.largest, self.isolated, pending)
