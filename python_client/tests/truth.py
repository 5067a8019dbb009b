"""Ground truth kept by the tests: what every counter, key and bucket must be."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

GRANULARITIES = ("minute", "hour", "day", "week", "month")


def bucket(granularity: str, at: datetime) -> datetime:
    """The UTC start of the bucket holding `at` (week: ISO week, Monday)."""
    at = at.astimezone(UTC)
    if granularity == "minute":
        return at.replace(second=0, microsecond=0)
    if granularity == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == "day":
        return day
    if granularity == "week":
        return day - timedelta(days=day.weekday())
    if granularity == "month":
        return day.replace(day=1)
    raise ValueError(granularity)


class Truth:
    """Sums per (counter, key) and per (counter, key, granularity, bucket)."""

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str, str], dict[datetime, int]] = defaultdict(lambda: defaultdict(int))
        self.increments = 0

    def add(self, counter: str, key: str, delta: int, at: datetime, granularities=GRANULARITIES) -> None:
        self.increments += 1
        self.totals[(counter, key)] += delta
        for g in granularities:
            self.buckets[(counter, key, g)][bucket(g, at)] += delta

    def merge(self, other: Truth) -> None:
        self.increments += other.increments
        for k, v in other.totals.items():
            self.totals[k] += v
        for k, series in other.buckets.items():
            mine = self.buckets[k]
            for b, v in series.items():
                mine[b] += v

    def to_plain(self) -> tuple:
        return (
            self.increments,
            dict(self.totals),
            {k: dict(v) for k, v in self.buckets.items()},
        )

    @classmethod
    def from_plain(cls, plain: tuple) -> Truth:
        t = cls()
        t.increments, totals, buckets = plain
        t.totals.update(totals)
        for k, v in buckets.items():
            t.buckets[k].update(v)
        return t


def assert_matches(conn, truth: Truth, start: datetime, end: datetime) -> int:
    """Compare every total and every series bucket through the SQL API.

    Returns the number of values compared; raises AssertionError listing the
    first mismatches.
    """
    mismatches: list[str] = []
    compared = 0
    for (counter, key), expected in sorted(truth.totals.items()):
        (got,) = conn.execute("SELECT tally.counter_value(%s::text, %s::text)", (counter, key)).fetchone()
        compared += 1
        if got != expected:
            mismatches.append(f"counter_value({counter!r}, {key!r}) = {got}, expected {expected}")
    for (counter, key, g), expected in sorted(truth.buckets.items()):
        rows = conn.execute(
            "SELECT bucket, value FROM tally.counter_series(%s::text, %s::text, %s::text, %s, %s)",
            (counter, key, g, start, end),
        ).fetchall()
        got = {b: v for b, v in rows}
        compared += len(expected)
        if got != dict(expected):
            missing = {b: v for b, v in expected.items() if got.get(b) != v}
            extra = {b: v for b, v in got.items() if b not in expected}
            mismatches.append(
                f"counter_series({counter!r}, {key!r}, {g!r}): {len(missing)} buckets differ"
                f" (e.g. {list(missing.items())[:3]}), {len(extra)} unexpected (e.g. {list(extra.items())[:3]})"
            )
    assert not mismatches, f"{len(mismatches)} mismatches:\n" + "\n".join(mismatches[:20])
    return compared
