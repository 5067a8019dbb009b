"""``tally demo``: a short, realistic load with the compactor running, then
what a user wants to see: counter values, an hourly series, the lag."""

from __future__ import annotations

import multiprocessing as mp
import random
import time
from datetime import UTC, datetime, timedelta

import psycopg

from tally.connect import connect
from tally.progress import Progress

COUNTERS = [
    # name, granularities, durable
    ("page_views", ["minute", "hour", "day", "week", "month"], False),
    ("followers", ["day", "week", "month"], True),
    ("workspace_events", ["hour", "day"], False),
    ("orders", ["day"], False),
]


def _setup(dsn: str) -> None:
    with connect(dsn) as conn:
        for name, grans, durable in COUNTERS:
            exists = conn.execute("SELECT 1 FROM tally.counters WHERE name = %s", (name,)).fetchone()
            if not exists:
                conn.execute("SELECT tally.create_counter(%s::text, %s::text[], %s::boolean)", (name, grans, durable))


def _writer(dsn: str, seed: int, stop_at: float, out: mp.Queue) -> None:
    rnd = random.Random(seed)
    n = 0
    with connect(dsn) as conn:
        while time.time() < stop_at:
            r = rnd.random()
            if r < 0.6:
                # a page view: a few hot pages, a long tail
                page = str(rnd.choice([1, 1, 1, 2, 2, 3]) if rnd.random() < 0.5 else rnd.randint(4, 500))
                conn.execute("SELECT tally.increment_counter('page_views', %s::text)", (page,))
                n += 1
            elif r < 0.8:
                # follow (+1) or unfollow (-1)
                who = str(rnd.randint(1, 50))
                conn.execute(
                    "SELECT tally.increment_counter('followers', %s::text, %s::bigint)",
                    (who, 1 if rnd.random() < 0.8 else -1),
                )
                n += 1
            else:
                # a batch of workspace events, some of them late (up to 6 h)
                k = 50
                keys = [f"ws{rnd.randint(1, 20)}" for _ in range(k)]
                now = datetime.now(UTC)
                ats = [now - timedelta(seconds=rnd.randint(0, 6 * 3600)) for _ in range(k)]
                conn.execute(
                    "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
                    (["workspace_events"] * k, keys, [1] * k, ats),
                )
                n += k
    out.put(n)


def _compactor(dsn: str, stop_at: float) -> None:
    with connect(dsn, application_name="tally demo compactor") as conn:
        while time.time() < stop_at:
            conn.execute("CALL tally.compact()")
            time.sleep(0.5)


def _exactly_once(conn: psycopg.Connection) -> str:
    """A batch of orders with event ids, then the same batch again, as a
    client retrying after a timeout would: the retry changes nothing.
    Returns what to print."""
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    ids = [f"order-{run}-{i}" for i in range(100)]
    regions = [("eu", "us", "apac")[i % 3] for i in range(100)]
    before = conn.execute("SELECT tally.counter_value('orders', 'eu')").fetchone()[0]
    sql = "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], NULL, %s::text[])"
    args = (["orders"] * 100, regions, [1] * 100, ids)
    (first,) = conn.execute(sql, args).fetchone()
    (again,) = conn.execute(sql, args).fetchone()
    after = conn.execute("SELECT tally.counter_value('orders', 'eu')").fetchone()[0]
    return (
        "\nExactly once (orders, 100 increments with event ids, then the same batch again):\n"
        f"  first call applied {first}, the replay applied {again}; orders in eu: +{after - before}"
    )


def run_demo(dsn: str, seconds: float = 15, writers: int = 4) -> int:
    _setup(dsn)
    stop_at = time.time() + seconds
    out: mp.Queue = mp.Queue()
    procs = [mp.Process(target=_writer, args=(dsn, i, stop_at, out)) for i in range(writers)]
    procs.append(mp.Process(target=_compactor, args=(dsn, stop_at)))
    print(f"tally demo: {writers} writers + 1 compactor for {seconds:.0f} s ...")
    for p in procs:
        p.start()
    with connect(dsn) as conn:
        with Progress(seconds, "load + compactor") as bar:
            while time.time() < stop_at:
                time.sleep(min(1.0, max(0.1, stop_at - time.time())))
                pending, age = conn.execute(
                    "SELECT sum(pending_deltas), max(oldest_pending_age) FROM tally.compactor_lag"
                ).fetchone()
                bar.note = f"pending deltas {pending:,}, oldest {(age or timedelta(0)).total_seconds():.1f} s"
                bar.update(seconds - max(0.0, stop_at - time.time()))
        for p in procs:
            p.join()
        written = sum(out.get() for _ in range(writers))
        print(f"\nincrements written: {written} ({written / seconds:,.0f}/s over {writers} writers)")
        exactly_once = _exactly_once(conn)
        conn.execute("CALL tally.compact()")

        print("\nTop pages today (page_views, day):")
        for key, value in conn.execute("SELECT key, value FROM tally.top_keys('page_views', 'day', now(), 5)"):
            print(f"  page {key:<6} {value:>8}")
        print("\nFollowers of accounts 1-5 (all-time, with unfollows):")
        for i in range(1, 6):
            (v,) = conn.execute("SELECT tally.counter_value('followers', %s::text)", (str(i),)).fetchone()
            print(f"  account {i:<4} {v:>8}")
        print(exactly_once)
        print("\nws1 events per hour, last 6 hours (workspace_events, hour):")
        rows = conn.execute(
            "SELECT bucket, value FROM tally.counter_series('workspace_events', 'ws1', 'hour',"
            " now() - interval '6 hours', now())"
        ).fetchall()
        peak = max((value for _, value in rows), default=1) or 1
        for bucket, value in rows:
            print(f"  {bucket:%Y-%m-%d %H:00}Z {value:>6}  {'#' * round(40 * value / peak)}")
        runs, deltas, last = conn.execute(
            "SELECT count(*), coalesce(sum(deltas), 0), max(finished_at) FROM tally.fold_runs"
            " WHERE outcome = 'ok' AND started_at > now() - make_interval(secs => %s)",
            (seconds + 30,),
        ).fetchone()
        pending = conn.execute("SELECT sum(pending_deltas) FROM tally.compactor_lag").fetchone()[0]
        print(f"\ncompactor: {runs} folds, {deltas} deltas folded, last fold {last:%H:%M:%S}Z, pending now {pending}")
        print("\nhealth (tally.health):")
        for check, status, reason in conn.execute('SELECT "check", status, reason FROM tally.health'):
            print(f"  {check:<10} {status:<9} {reason}")
    return 0
