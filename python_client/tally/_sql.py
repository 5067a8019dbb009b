"""The SQL the clients send: one statement per method, shared by the sync
``Tally`` and the asyncio ``AsyncTally`` so the two can never drift apart.

Every parameter is cast explicitly, so PostgreSQL resolves exactly one
function signature whatever Python type the caller passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

DEFAULT_GRANULARITIES: tuple[str, ...] = ("minute", "hour", "day", "week", "month")

CREATE_COUNTER = "SELECT tally.create_counter(%s::text, %s::text[], %s::boolean, %s::text)"
INCREMENT = "SELECT tally.increment_counter(%s::text, %s::text, %s::bigint, coalesce(%s::timestamptz, now()), %s::text)"
INCREMENT_MANY = "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[], %s::text[])"
# Group commit (tally.coalesce): a batch of increments without event ids, some
# at a given time and some at now(); a few such increments, one
# increment_counter call each in one statement (cheaper than one
# increment_counters call for a handful); and increments with event ids, one result
# per element (its ordinality), called in event-id order (PostgreSQL evaluates
# a volatile select list after the sort) so ids are claimed as
# tally.increment_counters claims them.
INCREMENT_MANY_AT = (
    "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[],"
    " ARRAY(SELECT coalesce(u.t, now()) FROM unnest(%s::timestamptz[]) WITH ORDINALITY AS u (t, i) ORDER BY u.i))"
)
INCREMENT_FEW = (
    "SELECT count(tally.increment_counter(u.c, u.k, u.d, coalesce(u.t, now())))"
    " FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[]) AS u (c, k, d, t)"
)
INCREMENT_EACH = (
    "SELECT u.i, tally.increment_counter(u.c, u.k, u.d, coalesce(u.t, now()), u.e)"
    " FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[], %s::text[])"
    " WITH ORDINALITY AS u (c, k, d, t, e, i) ORDER BY u.e, u.i"
)
VALUE = "SELECT tally.counter_value(%s::text, %s::text)"
SERIES = (
    "SELECT bucket, value FROM tally.counter_series(%s::text, %s::text, %s::text, %s::timestamptz, %s::timestamptz)"
)
VALUES = "SELECT key, value FROM tally.counter_values(%s::text, %s::text[])"
WINDOW = "SELECT tally.counter_window(%s::text, %s::text, %s::timestamptz, %s::timestamptz)"
TOP = "SELECT key, value FROM tally.top_keys(%s::text, %s::text, coalesce(%s::timestamptz, now()), %s::integer)"
COMPACT = "CALL tally.compact(%s::integer)"


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


def create_counter_args(
    name: str, granularities: Sequence[str] | None, durable: bool, time_zone: str = "UTC"
) -> tuple[str, list[str], bool, str]:
    """Parameters of CREATE_COUNTER; ``None`` granularities mean the default set."""
    grans = list(granularities) if granularities is not None else list(DEFAULT_GRANULARITIES)
    return name, grans, durable, time_zone


def increment_many_args(
    counters: Sequence[str],
    keys: Sequence[str],
    deltas: Sequence[int],
    ats: Sequence[datetime] | None,
    event_ids: Sequence[str] | None = None,
) -> tuple[list[str], list[str], list[int], list[datetime] | None, list[str] | None]:
    """Parameters of INCREMENT_MANY: five arrays, element i being one increment."""
    return (
        list(counters),
        list(keys),
        list(deltas),
        list(ats) if ats is not None else None,
        list(event_ids) if event_ids is not None else None,
    )
