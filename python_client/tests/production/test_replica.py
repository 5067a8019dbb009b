"""tally on a streaming hot standby, and after a failover.

The suite starts its own primary (a fresh cluster, tally migrated) and a
streaming hot standby of it (pg_basebackup -R), and stops and removes them.

- Reads on the standby: every read function, view, `tally status` and
  `tally metrics` answer there (UNLOGGED shards are unreadable during
  recovery), as a tally_reader login too; once replay has caught up, a
  durable counter reads exactly as on the primary (and as the ground truth
  of the writers), a fast one as the primary's folded value plus its
  logged pending deltas (increments with an event id), and the standby
  says what it left out.
- A promotion mid-load (the primary killed, the standby promoted): the
  loss report covers every fast increment acknowledged on the old primary
  and not folded into what the standby replicated, and nothing durable or
  with an event id is lost.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from topology import REPO, Server, caught_up, wait_until, workdir
from truth import Truth

TALLY = str(REPO / ".venv" / "bin" / "tally")
DB = "tally"


@pytest.fixture(scope="module")
def pair():
    """A primary with tally migrated into database `tally`, and a streaming
    hot standby of it."""
    base = workdir("tally-replica-")
    primary = Server(base, "primary").initdb().start()
    standby = None
    try:
        primary.create_database(DB)
        primary.migrate(DB)
        standby = primary.standby()
        yield primary, standby
    finally:
        for server in (standby, primary):
            if server is not None:
                server.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def _load(dsn: str, seconds: float, seed: int, truth: Truth, errors: list[str]) -> None:
    """Single and batch increments to a fast and a durable counter, some
    with event ids (which go to logged shards even on the fast counter);
    an increment enters the truth once its call returned."""
    rnd = random.Random(seed)
    deadline = time.monotonic() + seconds
    n = 0
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while time.monotonic() < deadline:
                n += 1
                counter = rnd.choice(["fast_views", "durable_follows"])
                key = str(rnd.randint(1, 40))
                delta = rnd.choice([1, 1, 2, 5, -1])
                at = datetime.now(UTC) - timedelta(minutes=rnd.uniform(0, 300))
                event_id = f"w{seed}-{n}" if rnd.random() < 0.3 else None
                if rnd.random() < 0.8:
                    (ok,) = conn.execute(
                        "SELECT tally.increment_counter(%s::text, %s::text, %s::bigint, %s::timestamptz, %s::text)",
                        (counter, key, delta, at, event_id),
                    ).fetchone()
                    assert ok is True
                    truth.add(counter, key, delta, at)
                else:
                    keys = [str(rnd.randint(1, 40)) for _ in range(20)]
                    (applied,) = conn.execute(
                        "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
                        ([counter] * 20, keys, [1] * 20, [at] * 20),
                    ).fetchone()
                    assert applied == 20
                    for k in keys:
                        truth.add(counter, k, 1, at)
    except Exception as exc:  # reported by the test
        errors.append(repr(exc))


def _compacting(dsn: str, stop: threading.Event, errors: list[str]) -> None:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("CALL tally.compact()")
                time.sleep(0.2)
    except Exception as exc:
        errors.append(repr(exc))


# What a standby can read of a key: its folded value plus the pending deltas
# in logged shards (durable counters; event-id increments of any counter).
EXPECTED_ON_STANDBY = """
    SELECT c.name, k.key,
           coalesce((SELECT t.value FROM tally.totals AS t WHERE t.counter_id = c.id AND t.key = k.key), 0)
           + coalesce((SELECT sum(d.delta) FROM tally.delta AS d JOIN tally.shards AS s ON s.shard = d.shard
                       WHERE s.durable AND d.counter_id = c.id AND d.key = k.key), 0)
    FROM tally.counters AS c CROSS JOIN unnest(%s::text[]) AS k (key)
    ORDER BY 1, 2
"""
SERIES_ON_STANDBY = """
    SELECT b.bucket, sum(b.value)::bigint FROM (
        SELECT r.bucket, r.value FROM tally.rollup_hour AS r JOIN tally.counters AS c ON c.id = r.counter_id
        WHERE c.name = %(counter)s AND r.key = %(key)s
        UNION ALL
        SELECT date_trunc('hour', d.at, 'UTC'), d.delta
        FROM tally.delta AS d JOIN tally.shards AS s ON s.shard = d.shard
        JOIN tally.counters AS c ON c.id = d.counter_id
        WHERE s.durable AND c.name = %(counter)s AND d.key = %(key)s
    ) AS b GROUP BY b.bucket ORDER BY b.bucket
"""


def test_a_hot_standby_answers_every_read_with_what_it_has(pair) -> None:
    primary, standby = pair
    pdsn, sdsn = primary.dsn(DB), standby.dsn(DB)
    with primary.connect(DB) as p:
        p.execute("SELECT tally.create_counter('fast_views')")
        p.execute("SELECT tally.create_counter('durable_follows', p_durable => true)")
        p.execute("CREATE ROLE replica_reader LOGIN IN ROLE tally_reader")
    caught_up(primary, standby)
    truth, errors = Truth(), []
    stop = threading.Event()
    compactor = threading.Thread(target=_compacting, args=(pdsn, stop, errors))
    writers = [threading.Thread(target=_load, args=(pdsn, 4.0, seed, truth, errors)) for seed in range(4)]
    compactor.start()
    for w in writers:
        w.start()
    # Reads on the standby go on while the primary writes and folds.
    deadline = time.monotonic() + 3
    with standby.connect(DB) as s:
        while time.monotonic() < deadline:
            s.execute("SELECT tally.counter_value('fast_views', '1'), tally.counter_value('durable_follows', '1')")
            s.execute("SELECT * FROM tally.health")
    for w in writers:
        w.join()
    stop.set()
    compactor.join()
    assert errors == []
    with primary.connect(DB) as p:
        # something of each kind pending: fast (lost to the standby), fast
        # with an event id and durable (replicated)
        p.execute("SELECT tally.increment_counter('fast_views', '1', 100)")
        p.execute("SELECT tally.increment_counter('fast_views', '2', 1000, now(), 'late-event')")
        p.execute("SELECT tally.increment_counter('durable_follows', '3', 10000)")
        truth.add("fast_views", "1", 100, datetime.now(UTC))
        truth.add("fast_views", "2", 1000, datetime.now(UTC))
        truth.add("durable_follows", "3", 10000, datetime.now(UTC))
        keys = sorted({k for (_, k) in truth.totals})
        expected = {(c, k): v for c, k, v in p.execute(EXPECTED_ON_STANDBY, (keys,))}
        on_primary = {
            (c, k): p.execute("SELECT tally.counter_value(%s, %s)", (c, k)).fetchone()[0]
            for c in ("fast_views", "durable_follows")
            for k in keys
        }
        top_durable = p.execute("SELECT * FROM tally.top_keys('durable_follows', 'all', now(), 50)").fetchall()
        # a window of whole minutes around everything written (bounds fixed
        # here: the standby reads the same window later)
        w_from, w_to = p.execute(
            "SELECT date_trunc('minute', now() - interval '1 day'), date_trunc('minute', now()) + interval '2 minutes'"
        ).fetchone()
        windows = {
            (c, k): p.execute("SELECT tally.counter_window(%s, %s, %s, %s)", (c, k, w_from, w_to)).fetchone()[0]
            for c in ("fast_views", "durable_follows")
            for k in keys
        }
        series = {
            c: p.execute(SERIES_ON_STANDBY, {"counter": c, "key": "1"}).fetchall()
            for c in ("fast_views", "durable_follows")
        }
        pending = dict(p.execute("SELECT counter, pending_deltas FROM tally.counter_status").fetchall())
        logged_pending = dict(
            p.execute(
                "SELECT c.name, count(d.*) FROM tally.counters AS c LEFT JOIN tally.delta AS d"
                " ON d.counter_id = c.id AND d.shard = ANY (SELECT s.shard FROM tally.shards AS s WHERE s.durable)"
                " GROUP BY c.name"
            ).fetchall()
        )
    assert pending["fast_views"] > logged_pending["fast_views"] >= 1  # the standby cannot see them all
    # the primary itself agrees with the truth; every increment (the last
    # 300 minutes) lies inside the window
    assert on_primary == {(c, k): truth.totals.get((c, k), 0) for (c, k) in on_primary}
    assert windows == on_primary
    caught_up(primary, standby)

    with standby.connect(DB) as s:
        assert s.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        got = {
            (c, k): s.execute("SELECT tally.counter_value(%s, %s)", (c, k)).fetchone()[0]
            for c in ("fast_views", "durable_follows")
            for k in keys
        }
        assert got == expected
        # durable: exactly the primary's value and the truth
        for k in keys:
            assert got[("durable_follows", k)] == on_primary[("durable_follows", k)]
            assert got[("durable_follows", k)] == truth.totals.get(("durable_follows", k), 0)
        assert s.execute("SELECT * FROM tally.top_keys('durable_follows', 'all', now(), 50)").fetchall() == top_durable
        # fast: the folded value plus the logged pending deltas (the +1000
        # with an event id is replicated, the +100 without is not)
        top_fast = s.execute("SELECT key, value FROM tally.top_keys('fast_views', 'all', now(), 50)").fetchall()
        assert top_fast == sorted(top_fast, key=lambda kv: (-kv[1], kv[0]))
        assert all(v == expected[("fast_views", k)] for k, v in top_fast)
        assert {k for (c, k), v in expected.items() if c == "fast_views" and v != 0} <= {k for k, _ in top_fast}
        s.execute("SELECT * FROM tally.top_keys('fast_views', 'day', now(), 10)").fetchall()
        for c in ("fast_views", "durable_follows"):
            got_series = s.execute(
                "SELECT * FROM tally.counter_series(%s, '1', 'hour', now() - interval '1 day',"
                " now() + interval '1 hour')",
                (c,),
            ).fetchall()
            assert got_series == series[c], c

        # a page of keys: what counter_value answers here, key by key, in order
        for c in ("fast_views", "durable_follows"):
            page = s.execute("SELECT key, value FROM tally.counter_values(%s, %s)", (c, keys[::-1])).fetchall()
            assert page == [(k, expected[(c, k)]) for k in keys[::-1]], c
        # a window: durable exactly the primary's; fast what the standby has
        # (the primary's less what it lost of the unlogged pending ones)
        for k in keys:
            got_window = s.execute(
                "SELECT tally.counter_window('durable_follows', %s, %s, %s)", (k, w_from, w_to)
            ).fetchone()[0]
            assert got_window == windows[("durable_follows", k)], k
            fast_window = s.execute(
                "SELECT tally.counter_window('fast_views', %s, %s, %s)", (k, w_from, w_to)
            ).fetchone()[0]
            lost = on_primary[("fast_views", k)] - expected[("fast_views", k)]
            assert fast_window == windows[("fast_views", k)] - lost, k

        status = {
            r[0]: r[1:] for r in s.execute("SELECT counter, pending_deltas, pending_complete FROM tally.counter_status")
        }
        assert status["fast_views"] == (logged_pending["fast_views"], False)
        assert status["durable_follows"] == (logged_pending["durable_follows"], True)
        lag = s.execute("SELECT durability, pending_deltas FROM tally.compactor_lag").fetchall()
        assert {p for d, p in lag if d == "fast"} == {None}
        assert (
            sum(p for d, p in lag if d == "durable") == logged_pending["durable_follows"] + logged_pending["fast_views"]
        )
        health = {c: (st, r) for c, st, r in s.execute('SELECT "check", status, reason FROM tally.health')}
        assert health["node"][0] == "ok" and health["node"][1].startswith("standby, streaming"), health
        assert health["compactor"][0] == "ok" and "runs on the primary" in health["compactor"][1]
        assert health["lag"][0] == "ok"
        for view in ("compactor_runs", "deadlocks", "drift", "quarantined", "crash_reset_log", "retention_policies"):
            s.execute(f"SELECT count(*) FROM (SELECT * FROM tally.{view}) AS v").fetchone()
        node = s.execute("SELECT role, streaming, unrecorded_crash FROM tally.node_status()").fetchone()
        assert node == ("standby", True, None)
        # writes belong on the primary
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            s.execute("SELECT tally.increment_counter('durable_follows', '1')")

    # A monitoring login holding only tally_reader, on the standby.
    with psycopg.connect(standby.dsn(DB, user="replica_reader"), autocommit=True) as r:
        assert (
            r.execute("SELECT tally.counter_value('durable_follows', '3')").fetchone()[0]
            == got[("durable_follows", "3")]
        )
        r.execute("SELECT * FROM tally.health").fetchall()
        r.execute("SELECT * FROM tally.counter_status").fetchall()
        r.execute("SELECT * FROM tally.compactor_lag").fetchall()

    out = subprocess.run([TALLY, "--dsn", sdsn, "status"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Node: hot standby, streaming" in out.stdout
    assert "fast_views" in out.stdout
    out = subprocess.run([TALLY, "--dsn", sdsn, "metrics"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    families = {f.name: f for f in text_string_to_metric_families(out.stdout)}
    assert families["tally_up"].samples[0].value == 1
    assert families["tally_standby"].samples[0].value == 1
    assert {s.labels["check"]: s.value for s in families["tally_health_status"].samples}["node"] == 0
    out = subprocess.run([TALLY, "--dsn", pdsn, "metrics"], capture_output=True, text=True, timeout=60)
    assert {f.name: f for f in text_string_to_metric_families(out.stdout)}["tally_standby"].samples[0].value == 0


def test_a_hot_standby_reads_a_counter_of_a_time_zone_and_the_backlog_check(pair) -> None:
    """A durable counter in New York's time zone: its local days (2026-11-01
    is 25 hours long), folded and pending, read on the standby as on the
    primary; the backlog check answers there from the replicated samples."""
    primary, standby = pair
    with primary.connect(DB) as p:
        p.execute("SELECT tally.create_counter('ny_days', p_durable => true, p_time_zone => 'America/New_York')")
        p.execute("SELECT tally.increment_counter('ny_days', 'k', 1, '2026-11-01 04:00+00')")  # Nov 1, 00:00 EDT
        p.execute("CALL tally.compact()")
        p.execute("SELECT tally.increment_counter('ny_days', 'k', 10, '2026-11-02 04:30+00')")  # Nov 1, 23:30 EST
        p.execute("SELECT tally.increment_counter('ny_days', 'k', 100, '2026-11-02 05:00+00')")  # Nov 2, 00:00 EST
        series = "SELECT * FROM tally.counter_series('ny_days', 'k', 'day', '2026-10-30', '2026-11-05')"
        on_primary = p.execute(series).fetchall()
        primary_backlog = p.execute("""SELECT status FROM tally.health WHERE "check" = 'backlog'""").fetchone()
    assert [(b.astimezone(UTC), v) for b, v in on_primary] == [
        (datetime(2026, 11, 1, 4, tzinfo=UTC), 11),
        (datetime(2026, 11, 2, 5, tzinfo=UTC), 100),
    ]
    caught_up(primary, standby)
    with standby.connect(DB) as s:
        assert s.execute(series).fetchall() == on_primary
        assert s.execute("SELECT * FROM tally.top_keys('ny_days', 'day', '2026-11-02 04:59+00')").fetchall() == [
            ("k", 11)
        ]
        backlog = s.execute("""SELECT status FROM tally.health WHERE "check" = 'backlog'""").fetchone()
        assert backlog == primary_backlog == ("ok",)


# ---------------------------------------------------------------- failover


class Ledger:
    """One writer's increments: each to its own key, so the test can tell
    afterwards which ones the new primary has. acked: (key, sent, acked);
    unsure: the call failed as the primary went down (it may have committed)."""

    def __init__(self) -> None:
        self.acked: dict[str, list[tuple[str, datetime, datetime]]] = {"fast": [], "durable": [], "event": []}
        self.unsure: dict[str, list[str]] = {"fast": [], "durable": [], "event": []}
        self.errors: list[str] = []


def _failover_writer(dsn: str, w: int, ledger: Ledger, stop: threading.Event) -> None:
    kinds = ["fast", "fast", "durable", "event"]
    conn = psycopg.connect(dsn, autocommit=True)
    i = 0
    while not stop.is_set():
        i += 1
        kind = kinds[i % len(kinds)]
        key = f"{kind}-{w}-{i}"
        counter = "durable_c" if kind == "durable" else "fast_c"
        sent = datetime.now(UTC)
        try:
            conn.execute(
                "SELECT tally.increment_counter(%s::text, %s::text, 1, now(), %s::text)",
                (counter, key, key if kind == "event" else None),
            )
        except psycopg.OperationalError:
            ledger.unsure[kind].append(key)
            return  # the primary is gone
        except Exception as exc:
            ledger.errors.append(repr(exc))
            return
        ledger.acked[kind].append((key, sent, datetime.now(UTC)))


def test_a_promotion_reports_exactly_the_fast_increments_it_lost() -> None:
    base = workdir("tally-failover-")
    primary = Server(base, "primary").initdb().start()
    standby = None
    try:
        primary.create_database(DB)
        primary.migrate(DB)
        with primary.connect(DB) as p:
            p.execute("SELECT tally.create_counter('fast_c')")
            p.execute("SELECT tally.create_counter('durable_c', p_durable => true)")
            p.execute("CALL tally.compact()")
        standby = primary.standby()
        # Synchronous replication: what the primary acknowledged, the
        # standby has (the standby's own copy of the settings has none, so
        # once promoted it does not wait for a standby of its own).
        with primary.connect() as c:
            c.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
            c.execute("SELECT pg_reload_conf()")
            wait_until(
                lambda: c.execute("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'").fetchone()[0],
                30,
                "the standby to be synchronous",
            )
        load_started = datetime.now(UTC)
        pdsn = primary.dsn(DB)
        ledgers = [Ledger() for _ in range(4)]
        stop, compactor_stop, errors = threading.Event(), threading.Event(), []
        writers = [threading.Thread(target=_failover_writer, args=(pdsn, w, ledgers[w], stop)) for w in range(4)]
        compactor = threading.Thread(target=_compacting_until_gone, args=(pdsn, compactor_stop, errors))
        for t in (*writers, compactor):
            t.start()
        time.sleep(4)
        # The primary dies under load; the standby is promoted.
        primary.stop("immediate")
        stop.set()
        compactor_stop.set()
        for t in (*writers, compactor):
            t.join(timeout=60)
        assert errors == [] and [e for x in ledgers for e in x.errors] == [], errors
        before_promotion = datetime.now(UTC)
        standby.promote()
        after_promotion = datetime.now(UTC)

        with standby.connect(DB) as n:
            assert not n.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            assert n.execute("SELECT unrecorded_crash FROM tally.node_status()").fetchone()[0] is True
            n.execute("CALL tally.compact()")
            rows = n.execute(
                "SELECT cause, lost_since, lost_until, server_started_at FROM tally.crash_reset_log"
            ).fetchall()
            assert len(rows) == 1, rows
            cause, lost_since, lost_until, started = rows[0]
            assert cause == "promotion"
            # the window ends at the promotion, not at the standby's start
            assert started < before_promotion
            assert before_promotion - timedelta(seconds=1) <= lost_until <= after_promotion + timedelta(seconds=1)
            # and starts once the load ran, seconds before the failover
            assert lost_since is not None and load_started <= lost_since <= before_promotion
            health = {c: (s, r) for c, s, r in n.execute('SELECT "check", status, reason FROM tally.health')}
            assert health["crash"][0] == "critical" and health["crash"][1].startswith("promotion detected"), health

            def value(counter: str, key: str) -> int:
                return n.execute("SELECT tally.counter_value(%s, %s)", (counter, key)).fetchone()[0]

            lost = []
            for ledger in ledgers:
                for key, _, _ in ledger.acked["durable"]:
                    assert value("durable_c", key) == 1, key  # acknowledged and durable: kept
                for key, sent, acked in ledger.acked["fast"]:
                    v = value("fast_c", key)
                    assert v in (0, 1), (key, v)
                    if v == 0:
                        lost.append((key, sent, acked))
                for key in ledger.unsure["durable"] + ledger.unsure["fast"]:
                    counter = "durable_c" if key.startswith("durable") else "fast_c"
                    assert value(counter, key) in (0, 1)
                # Event ids: acknowledged ones kept; a replay of each (as a
                # client retrying after the failover) applies the unsure ones
                # once and the others not at all.
                for key, _, _ in ledger.acked["event"]:
                    assert value("fast_c", key) == 1, key
                for key in [k for k, _, _ in ledger.acked["event"]] + ledger.unsure["event"]:
                    n.execute("SELECT tally.increment_counter('fast_c', %s, 1, now(), %s)", (key, key))
                    assert value("fast_c", key) == 1, key
            acked_fast = sum(len(x.acked["fast"]) for x in ledgers)
            assert acked_fast > 100 and 0 < len(lost) < acked_fast, (acked_fast, len(lost))
            # Every fast increment lost lies in the window reported.
            for key, sent, acked in lost:
                assert acked >= lost_since and sent <= lost_until, (key, sent, acked, lost_since, lost_until)
    finally:
        for server in (standby, primary):
            if server is not None:
                server.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def _compacting_until_gone(dsn: str, stop: threading.Event, errors: list[str]) -> None:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("CALL tally.compact()")
                time.sleep(0.2)
    except psycopg.OperationalError:
        pass  # the primary went down under it
    except Exception as exc:
        errors.append(repr(exc))
