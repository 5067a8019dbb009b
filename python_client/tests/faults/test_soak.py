"""The compactor never stops (soak, 3 minutes in `make test`;
TALLY_SOAK_SECONDS longer).

pg_cron runs tally.compact_loop() every minute in this test's database (a
job scheduled from pg_cron's database with cron.schedule_in_database, as
tally.schedule_compactor's hint says for any other database), folding in
chunks of CHUNK deltas. Meanwhile:
- legitimate writers: singles and batches, positive and negative, a hot key
  and 1,000 others, backfilled timestamps, fast and durable counters,
  event ids and their replays; each keeps a ground truth;
- a hostile writer: bigint-extreme deltas of poison keys on both sides of
  fold chunk boundaries and in three shards at once;
- ANALYZE of the catalogs and of tally's tables, every few seconds;
- the idempotency window changed every 15 s.
Throughout, tally.health must tell the truth (folds never abandoned,
maintenance never failing, quarantine warn exactly when something is set
aside, lag exactly as old as the oldest pending delta) and the compactor
steps at least every 20 s; at the end every legitimate increment is exact
at every granularity, every poison delta is either folded or in quarantine
(never lost, never both), nothing is pending, and no deadlock happened."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import soak_load
import workers
from conftest import CLUSTER
from load import keep_everything
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from truth import Truth, assert_matches

SECONDS = float(os.environ.get("TALLY_SOAK_SECONDS", "180"))
LEGIT_WRITERS = 4
RATE = 40  # calls a second per writer: about 1,300 increments/s in all, backfilled over 30 days
CHUNK = 1000
DAYS_BACK = 30
COUNTERS = ["soak_fast", "soak_durable"]


def _cron_conn() -> psycopg.Connection:
    with psycopg.connect(make_conninfo(**CLUSTER), autocommit=True) as admin:
        cron_db = admin.execute("SELECT current_setting('cron.database_name')").fetchone()[0]
    conn = psycopg.connect(make_conninfo(**{**CLUSTER, "dbname": cron_db}), autocommit=True)
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    return conn


def _health(conn: psycopg.Connection) -> tuple[dict[str, tuple[str, str]], dict[str, float]]:
    """tally.health and, in the same snapshot, the facts it speaks of: the
    quarantined deltas, the oldest pending delta's age, and the compactor's
    progress (generation flips and recorded fold runs)."""
    rows = conn.execute(
        """
        SELECT h."check", h.status, h.reason,
               (SELECT count(*) FROM tally.quarantine),
               (SELECT coalesce(extract(EPOCH FROM now() - min(d.written_at)), 0) FROM tally.delta AS d),
               (SELECT w.flips FROM tally.write_gen AS w),
               (SELECT count(*) FROM tally.fold_runs AS r WHERE r.mode IS DISTINCT FROM 'maintenance')
        FROM tally.health AS h
        """
    ).fetchall()
    facts = {"quarantined": rows[0][3], "oldest": float(rows[0][4]), "progress": rows[0][5] + rows[0][6]}
    return {c: (s, r) for c, s, r, *_ in rows}, facts


def test_soak_the_compactor_never_stops(dsn: str, conn: psycopg.Connection) -> None:
    dbname = conninfo_to_dict(dsn)["dbname"]
    for c in COUNTERS:
        conn.execute("SELECT tally.create_counter(%s, p_durable => %s)", (c, c.endswith("durable")))
    keep_everything(conn, COUNTERS)
    conn.execute(
        "SELECT tally.create_counter(%s, %s)", (soak_load.HOSTILE_COUNTER, list(soak_load.HOSTILE_GRANULARITIES))
    )
    deadlocks_before = workers.deadlocks(conn)
    job = f"tally-soak-{uuid.uuid4().hex[:8]}"
    cron = _cron_conn()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs: list = []
    violations: list[str] = []
    samples = 0
    try:
        cron.execute(
            "SELECT cron.schedule_in_database(%s, '* * * * *', %s, %s)",
            (job, f"CALL tally.compact_loop(55, 0.5, {CHUNK})", dbname),
        )
        procs = [
            ctx.Process(target=soak_load.legit_writer, args=(dsn, seed, COUNTERS, SECONDS, DAYS_BACK, RATE, out))
            for seed in range(LEGIT_WRITERS)
        ]
        procs.append(ctx.Process(target=soak_load.hostile_writer, args=(dsn, 1000, SECONDS, CHUNK, out)))
        for p in procs:
            p.start()

        rnd = random.Random(11)
        started = time.monotonic()
        compactor_seen = progressed_at = None
        progress = 0
        next_window = started + 15
        window = 7
        while time.monotonic() < started + SECONDS:
            conn.execute(
                "ANALYZE pg_catalog.pg_class, pg_catalog.pg_inherits, pg_catalog.pg_attribute, tally.totals,"
                " tally.delta, tally.event_ids, tally.rollup_minute"
            )
            if time.monotonic() >= next_window:
                window = rnd.randint(1, 30)
                conn.execute("SELECT tally.set_event_window(%s)", (window,))
                next_window = time.monotonic() + 15
            checks, facts = _health(conn)
            samples += 1
            now = time.monotonic()
            if compactor_seen is None and facts["progress"] > 0:
                compactor_seen = progressed_at = now
                progress = facts["progress"]
            for check in ("folds", "maintenance", "crash", "drift"):
                if checks[check][0] != "ok":
                    violations.append(f"{check}: {checks[check]}")
            if (checks["quarantine"][0] == "warn") != (facts["quarantined"] > 0):
                violations.append(f"quarantine says {checks['quarantine']} with {facts['quarantined']} set aside")
            # lag tells the truth: the oldest pending delta's age, 10 s warn, 60 s critical
            oldest = facts["oldest"]
            expected = "ok" if oldest < 10 else "warn" if oldest < 60 else "critical"
            if checks["lag"][0] != expected:
                violations.append(f"lag says {checks['lag']} with the oldest pending delta {oldest:.1f} s old")
            # folding never stops: once pg_cron started the loop, a step at least
            # every 20 s (the job restarts each minute: a few seconds between runs)
            if compactor_seen is not None:
                if facts["progress"] != progress:
                    progress, progressed_at = facts["progress"], now
                elif now - progressed_at > 20:
                    violations.append(f"no compactor step for {now - progressed_at:.0f} s")
            time.sleep(2)
        assert compactor_seen is not None, "pg_cron never started tally.compact_loop"

        truth = Truth()
        sent: dict[str, list[int]] = {}
        for _ in procs:
            kind, ident, calls, errors, result = out.get(timeout=300)
            assert not errors, f"{kind} writer {ident} failed:\n" + "\n".join(errors)
            assert calls > 0, f"{kind} writer {ident} made no call"
            if kind == "legit":
                truth.merge(Truth.from_plain(result))
            else:
                sent, filler = result
                truth.merge(Truth.from_plain(filler))
        for p in procs:
            p.join(timeout=60)

        # the cron job folds the rest
        deadline = time.monotonic() + 120
        while conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] and time.monotonic() < deadline:
            time.sleep(1)
        assert conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0, "pg_cron stopped folding"
    finally:
        cron.execute("SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = %s", (job,))
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'CALL tally.compact_loop%%'"
        )
        cron.close()
        for p in procs:
            if p.is_alive():
                p.kill()

    assert not violations, f"{len(violations)} times tally.health was wrong (of {samples}):\n" + "\n".join(
        violations[:20]
    )
    # every legitimate increment, at every granularity
    start = datetime.now(UTC) - timedelta(days=DAYS_BACK + 40)
    compared = assert_matches(conn, truth, start, datetime.now(UTC) + timedelta(days=1))
    assert compared > truth.increments > 50_000
    # every poison delta is folded or set aside: never lost, never both
    assert sent, "the hostile writer sent nothing"
    rows = conn.execute(
        """
        SELECT p.key, coalesce(t.value, 0), coalesce(q.total, 0), coalesce(q.n, 0)
        FROM unnest(%s::text[]) AS p (key)
        CROSS JOIN (SELECT id FROM tally.counters WHERE name = %s) AS c
        LEFT JOIN tally.totals AS t ON t.counter_id = c.id AND t.key = p.key
        LEFT JOIN (
            SELECT q.key, sum(q.delta) AS total, count(*) AS n FROM tally.quarantine AS q
            WHERE q.counter_id = (SELECT id FROM tally.counters WHERE name = %s) GROUP BY q.key
        ) AS q ON q.key = p.key
        """,
        (list(sent), soak_load.HOSTILE_COUNTER, soak_load.HOSTILE_COUNTER),
    ).fetchall()
    for key, folded, quarantined, n in rows:
        total, count = sent[key]
        assert folded + quarantined == total, (key, folded, quarantined, total)
        assert 0 < n <= count, f"{key}: {n} of its {count} deltas set aside (they cannot all fold)"
    checks, facts = _health(conn)
    assert checks["quarantine"][0] == "warn" and facts["quarantined"] > 0
    assert {c: s for c, (s, _) in checks.items()} == {
        "node": "ok",
        "compactor": "ok",
        "lag": "ok",
        "backlog": "ok",
        "folds": "ok",
        "maintenance": "ok",
        "drift": "ok",
        "crash": "ok",
        "quarantine": "warn",
    }
    # the window changes took: contiguous partitions, none wholly past the
    # last window, the last holding the day three days ahead, all listed
    assert [s for s, _ in conn.execute("SELECT * FROM tally.maintain()").fetchall() if s == "failed"] == []
    today = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date").fetchone()[0]
    layout = conn.execute("SELECT day, next_day FROM tally.event_days ORDER BY day").fetchall()
    assert layout and all(a[1] == b[0] for a, b in itertools.pairwise(layout)), layout
    assert layout[0][1] > today - timedelta(days=window) and layout[-1][1] > today + timedelta(days=3), layout
    parts = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'tally.event_ids'::regclass").fetchone()
    assert parts[0] == len(layout)
    stats = conn.execute("SELECT retried_deadlocks, abandoned FROM tally.fold_stats").fetchone()
    assert stats == (0, 0)
    assert workers.deadlocks(conn) == deadlocks_before
