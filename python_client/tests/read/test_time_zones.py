"""Counters whose buckets follow a time zone's wall clock, against a ground
truth the test computes in that zone with Python's zoneinfo: a northern
zone (America/New_York), a southern one (Australia/Sydney), a half-hour
zone without daylight saving (Asia/Kolkata) and a half-hour one with it
(Australia/Adelaide), UTC beside them. Increments land around every
daylight-saving change of 2026 (a 23- and a 25-hour day each) and around
local month ends, written by concurrent writers while compactors fold;
every bucket of every granularity is compared pending, then folded."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import psycopg

ZONES = {
    "tz_ny": "America/New_York",
    "tz_syd": "Australia/Sydney",
    "tz_kol": "Asia/Kolkata",
    "tz_adl": "Australia/Adelaide",
    "tz_utc": "UTC",
}
GRANULARITIES = ("minute", "hour", "day", "week", "month")
KEYS = [f"k{i}" for i in range(8)]
YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)


def bucket(g: str, at: datetime, zone: str) -> datetime:
    """The start of the bucket of granularity g holding `at` on `zone`'s
    wall clock, as PostgreSQL's date_trunc(g, at, zone) cuts it: minutes
    and hours keep the offset `at` has (the two 01:00 hours of a night the
    clocks go back are two buckets); a day, week or month starts at the
    local midnight that begins it."""
    local = at.astimezone(ZoneInfo(zone))
    if g in ("minute", "hour"):
        cut = (
            local.replace(second=0, microsecond=0)
            if g == "minute"
            else local.replace(minute=0, second=0, microsecond=0)
        )
        return (cut.replace(tzinfo=None) - local.utcoffset()).replace(tzinfo=UTC)
    day = local.date()
    if g == "week":
        day -= timedelta(days=day.weekday())
    elif g == "month":
        day = day.replace(day=1)
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).astimezone(UTC)


@cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """The instants of 2026 at which `zone`'s offset changes."""
    z = ZoneInfo(zone)
    found, t = [], YEAR_START
    while t.year == 2026:
        if (t + timedelta(hours=1)).astimezone(z).utcoffset() != t.astimezone(z).utcoffset():
            found.append(t + timedelta(hours=1))
        t += timedelta(hours=1)
    return tuple(found)


def moments(zone: str, rnd: random.Random, n: int) -> list[datetime]:
    """n instants near the zone's changes and local month ends: within 30
    hours of each, to the second."""
    z = ZoneInfo(zone)
    anchors = list(transitions(zone))
    anchors += [datetime(2026, m, 1, tzinfo=z).astimezone(UTC) for m in (1, 3, 4, 7, 10, 11, 12)]
    return [rnd.choice(anchors) + timedelta(seconds=rnd.randint(-30 * 3600, 30 * 3600)) for _ in range(n)]


def test_dst_zones_have_their_changes() -> None:
    """The zones chosen do change in 2026: twice each, Kolkata never."""
    assert len(transitions("America/New_York")) == 2
    assert len(transitions("Australia/Sydney")) == 2
    assert len(transitions("Australia/Adelaide")) == 2
    assert transitions("Asia/Kolkata") == ()


def expected(truth: dict) -> dict:
    """Per (counter, key, granularity): {bucket start: value}."""
    out: dict = defaultdict(lambda: defaultdict(int))
    for (counter, key, at), delta in truth.items():
        for g in GRANULARITIES:
            out[counter, key, g][bucket(g, at, ZONES[counter])] += delta
    return out


def compare(conn: psycopg.Connection, truth: dict) -> int:
    want = expected(truth)
    start, end = datetime(2025, 12, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)
    compared, bad = 0, []
    for counter in ZONES:
        for key in KEYS:
            total = sum(d for (c, k, _), d in truth.items() if c == counter and k == key)
            got_total = conn.execute("SELECT tally.counter_value(%s, %s)", (counter, key)).fetchone()[0]
            if got_total != total:
                bad.append(f"{counter}/{key} total {got_total} != {total}")
            for g in GRANULARITIES:
                rows = conn.execute(
                    "SELECT bucket, value FROM tally.counter_series(%s, %s, %s, %s, %s)", (counter, key, g, start, end)
                ).fetchall()
                got = {b.astimezone(UTC): v for b, v in rows}  # (read in the session's zone)
                exp = {b: v for b, v in want[counter, key, g].items()}
                compared += len(exp)
                if got != exp:
                    diff = sorted(set(got.items()) ^ set(exp.items()))[:4]
                    bad.append(f"{counter}/{key}/{g}: {len(got)} buckets, {len(exp)} expected; e.g. {diff}")
    assert not bad, "\n".join(bad[:20])
    return compared


def test_buckets_follow_each_zones_wall_clock_exactly(dsn: str, conn: psycopg.Connection) -> None:
    # the session's own zone plays no part
    conn.execute("SET TimeZone = 'Pacific/Chatham'")
    for counter, zone in ZONES.items():
        conn.execute("SELECT tally.create_counter(%s, p_time_zone => %s)", (counter, zone))
        for g in ("minute", "hour"):
            conn.execute("SELECT tally.set_retention(%s, %s, NULL)", (counter, g))
    truth: dict = defaultdict(int)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def write(seed: int, n: int) -> None:
        rnd = random.Random(seed)
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute("SET TimeZone = 'America/Los_Angeles'")
                for i in range(n):
                    counter = rnd.choice(list(ZONES))
                    if i % 4 == 0:  # a batch across counters and zones
                        batch = [(rnd.choice(list(ZONES)), rnd.choice(KEYS), rnd.randint(-3, 9)) for _ in range(20)]
                        ats = [moments(ZONES[b[0]], rnd, 1)[0] for b in batch]
                        c.execute(
                            "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
                            ([b[0] for b in batch], [b[1] for b in batch], [b[2] for b in batch], ats),
                        )
                        with lock:
                            for (cn, k, d), at in zip(batch, ats, strict=True):
                                truth[cn, k, at] += d
                    else:
                        key, delta, at = rnd.choice(KEYS), rnd.randint(1, 5), moments(ZONES[counter], rnd, 1)[0]
                        c.execute("SELECT tally.increment_counter(%s, %s, %s, %s)", (counter, key, delta, at))
                        with lock:
                            truth[counter, key, at] += delta
        except BaseException as exc:
            errors.append(exc)

    def compact(stop: threading.Event) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute("SET TimeZone = 'Asia/Tokyo'")
                while not stop.is_set():
                    c.execute("CALL tally.compact(500)")
        except BaseException as exc:
            errors.append(exc)

    # pending only: every bucket read from the deltas
    threads = [threading.Thread(target=write, args=(s, 150)) for s in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert conn.execute("SELECT tally._pending()").fetchone()[0] > 0
    compare(conn, truth)

    # writers beside compactors, then everything folded
    stop = threading.Event()
    compactors = [threading.Thread(target=compact, args=(stop,)) for _ in range(2)]
    writers = [threading.Thread(target=write, args=(s, 250)) for s in range(10, 14)]
    for t in compactors + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in compactors:
        t.join()
    assert not errors, errors
    conn.execute("CALL tally.compact()")
    assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0
    folded = conn.execute("SELECT count(*) FROM tally.fold_runs WHERE mode = 'delete' AND deltas > 0").fetchone()[0]
    assert folded > 2
    compared = compare(conn, truth)
    assert compared > 5_000

    # the rollups themselves hold the local buckets (no read-time conversion)
    want = expected(truth)
    for g in ("hour", "day", "month"):
        rows = conn.execute(
            f"SELECT c.name, r.key, r.bucket, r.value FROM tally.rollup_{g} AS r"
            " JOIN tally.counters AS c ON c.id = r.counter_id"
        ).fetchall()
        got = {(n, k, b.astimezone(UTC)): v for n, k, b, v in rows}
        exp = {(c, k, b): v for (c, k, gg), bs in want.items() if gg == g for b, v in bs.items()}
        assert got == exp, g

    # top_keys: every key of a day bucket in each zone, from any time inside it
    for counter, zone in ZONES.items():
        anchor = (transitions(zone) or [datetime(2026, 11, 1, 12, tzinfo=UTC)])[0]
        day = bucket("day", anchor, zone)
        inside = day + timedelta(hours=23, minutes=59)  # the day of a change may be 23 hours long
        if bucket("day", inside, zone) != day:
            inside = day + timedelta(hours=22)
        rows = conn.execute("SELECT key, value FROM tally.top_keys(%s, 'day', %s, 100)", (counter, inside)).fetchall()
        exp = sorted(
            ((k, want[counter, k, "day"].get(day, 0)) for k in KEYS if day in want[counter, k, "day"]),
            key=lambda kv: (-kv[1], kv[0]),
        )
        assert rows == exp, (counter, day)
    print(f"\n  {sum(1 for _ in truth)} increments over {len(ZONES)} zones; {compared} buckets exact")
