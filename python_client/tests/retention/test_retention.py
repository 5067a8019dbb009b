"""Retention: buckets older than a counter's retention are neither written
nor read, while the total and the coarser granularities still count them;
pg_partman drops partitions no counter keeps any more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest


def series(conn: psycopg.Connection, counter: str, g: str) -> dict[datetime, int]:
    rows = conn.execute(
        "SELECT bucket, value FROM tally.counter_series(%s, 'k', %s, now() - interval '3 years', now())",
        (counter, g),
    ).fetchall()
    return dict(rows)


def partitions(conn: psycopg.Connection, g: str) -> set[str]:
    return {
        r[0]
        for r in conn.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass", (f"tally.rollup_{g}",)
        )
    }


def test_defaults_skip_old_minutes_and_hours_but_count_them(conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('r')")
    now = datetime.now(UTC)
    ages = {
        "3d": timedelta(days=3),
        "10d": timedelta(days=10),
        "100d": timedelta(days=100),
        "400d": timedelta(days=400),
    }
    for i, age in enumerate(ages.values()):
        conn.execute("SELECT tally.increment_counter('r', 'k', %s, %s)", (10**i, now - age))
    minute_parts_before = partitions(conn, "minute")
    # Pending deltas past retention are hidden before the fold too.
    before = {g: series(conn, "r", g) for g in ("minute", "hour", "day", "month")}
    conn.execute("CALL tally.compact()")
    after = {g: series(conn, "r", g) for g in ("minute", "hour", "day", "month")}
    assert before == after

    assert sorted(after["minute"].values()) == [1]  # 7 days: only the 3-day-old increment
    assert sorted(after["hour"].values()) == [1, 10]  # 90 days
    assert sorted(after["day"].values()) == [1, 10, 100, 1000]  # kept forever
    assert sum(after["month"].values()) == 1111
    assert conn.execute("SELECT tally.counter_value('r', 'k')").fetchone()[0] == 1111
    # No minute partition was created for buckets nobody keeps.
    created = partitions(conn, "minute") - minute_parts_before
    assert all((now - timedelta(days=3)).strftime("%Y_%m_%d") in p for p in created), created

    rows = conn.execute("SELECT granularity, keep, set_by FROM tally.retention_policies WHERE counter = 'r'").fetchall()
    assert rows[:2] == [("minute", timedelta(days=7), "default"), ("hour", timedelta(days=90), "default")]


def test_per_counter_retention_and_partition_drop(conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('long_minutes', '{minute}')")
    conn.execute("SELECT tally.set_retention('long_minutes', 'minute', NULL)")  # keep forever
    at = datetime.now(UTC) - timedelta(days=20)
    conn.execute("SELECT tally.increment_counter('long_minutes', 'k', 5, %s)", (at,))
    conn.execute("CALL tally.compact()")
    part = f"tally.rollup_minute_p{at:%Y_%m_%d}"
    assert part in partitions(conn, "minute")
    assert list(series(conn, "long_minutes", "minute").values()) == [5]
    assert (
        conn.execute("SELECT retention FROM partman.part_config WHERE parent_table = 'tally.rollup_minute'").fetchone()[
            0
        ]
        is None
    )

    # Back to 10 days: the bucket is hidden at once, the partition dropped by maintain().
    conn.execute("SELECT tally.set_retention('long_minutes', 'minute', '10 days')")
    assert series(conn, "long_minutes", "minute") == {}
    assert conn.execute("SELECT tally.counter_value('long_minutes', 'k')").fetchone()[0] == 5
    steps = conn.execute("SELECT step, detail FROM tally.maintain()").fetchall()
    assert ("partitions", "tally.rollup_minute") in [(s, d.split(":")[0]) for s, d in steps]
    assert part not in partitions(conn, "minute")
    assert conn.execute("SELECT tally.counter_value('long_minutes', 'k')").fetchone()[0] == 5
    # maintain() leaves the caller's search_path alone (pg_partman changes it).
    assert conn.execute("SHOW search_path").fetchone()[0] == '"$user", public'


def test_default_retention_change_applies_to_counters_without_override(conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('d1', '{hour}')")
    conn.execute("SELECT tally.set_retention(NULL, 'hour', '2 days')")
    conn.execute("SELECT tally.increment_counter('d1', 'k', 1, now() - interval '5 days')")
    conn.execute("SELECT tally.increment_counter('d1', 'k', 2, now() - interval '1 day')")
    conn.execute("CALL tally.compact()")
    assert sorted(series(conn, "d1", "hour").values()) == [2]


@pytest.mark.parametrize(
    ("args", "sqlstate"),
    [
        (("r2", "minute", "30 seconds"), "22023"),  # shorter than one bucket
        (("r2", "year", "1 day"), "22023"),  # unknown granularity
        (("nope", "minute", "1 day"), "42704"),  # unknown counter
        (("r2", "week", "30 days"), "22023"),  # a granularity r2 does not keep
    ],
)
def test_set_retention_refusals(conn: psycopg.Connection, args: tuple, sqlstate: str) -> None:
    conn.execute("SELECT tally.create_counter('r2', '{minute,day}')")
    before = conn.execute("SELECT count(*) FROM tally.retention").fetchone()[0]
    with pytest.raises(psycopg.Error) as exc:
        conn.execute("SELECT tally.set_retention(%s, %s, %s::interval)", args)
    assert exc.value.sqlstate == sqlstate
    assert exc.value.diag.message_hint
    assert conn.execute("SELECT count(*) FROM tally.retention").fetchone()[0] == before
