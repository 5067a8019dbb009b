"""Counting a table's rows, three ways, on the same follow table: untracked
(the baseline: the application's INSERT alone), tracked by tally
(tally.track_table: statement triggers appending deltas) and a row-level
counter-cache trigger (``UPDATE profile SET followers = followers + 1``,
what Rails' counter_cache and most hand-written triggers do).

- single-row INSERTs on one hot key, pgbench clients, in interleaved
  rounds (the median of the per-round ratios), a compactor running;
- one 100,000-row ``INSERT ... SELECT`` over 100 keys: the deltas it
  appended (one per key and minute, not per row) and its time beside the
  untracked table's;
- deadlocks: threads doing multi-row INSERTs whose keys come in different
  orders; the counter-cache trigger updates the profile rows in that order,
  tally's triggers update no shared row.
Every table's counter is checked against its COUNT(*) at the end."""

from __future__ import annotations

import random
import statistics
import threading
import time

import psycopg

from bench.plan import SCHEMA, Plan
from bench.runners import Compactor, PgBench

COUNTER = "bench_tracked"
KINDS = ("untracked", "tracked", "counter_cache")
HOT = 42


def setup(conn: psycopg.Connection) -> None:
    for kind in KINDS:
        conn.execute(
            f"CREATE TABLE {SCHEMA}.follow_{kind} (id bigserial PRIMARY KEY, subject integer NOT NULL,"
            " follower integer NOT NULL)"
        )
    conn.execute(f"CREATE TABLE {SCHEMA}.profile (id integer PRIMARY KEY, followers bigint NOT NULL DEFAULT 0)")
    conn.execute(f"INSERT INTO {SCHEMA}.profile (id) SELECT g FROM generate_series(0, 1000) AS g")
    conn.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.counter_cache() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                UPDATE {SCHEMA}.profile SET followers = followers + 1 WHERE id = NEW.subject;
            ELSE
                UPDATE {SCHEMA}.profile SET followers = followers - 1 WHERE id = OLD.subject;
            END IF;
            RETURN NULL;
        END $$
        """
    )
    conn.execute(
        f"CREATE TRIGGER counter_cache AFTER INSERT OR DELETE ON {SCHEMA}.follow_counter_cache"
        f" FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.counter_cache()"
    )
    conn.execute("SELECT tally.create_counter(%s)", (COUNTER,))
    conn.execute("SELECT tally.track_table(%s, %s, 'subject')", (COUNTER, f"{SCHEMA}.follow_tracked"))


def _script(kind: str) -> str:
    return f"INSERT INTO {SCHEMA}.follow_{kind} (subject, follower) VALUES ({HOT}, :client_id);\n"


def _exact(conn: psycopg.Connection) -> bool:
    """Every key of the tracked and the counter-cache tables equals its COUNT(*)."""
    bad = conn.execute(
        f"SELECT count(*) FROM (SELECT subject, count(*) AS n FROM {SCHEMA}.follow_tracked GROUP BY 1) AS t"
        " WHERE tally.counter_value(%s, t.subject::text) <> t.n",
        (COUNTER,),
    ).fetchone()[0]
    bad += conn.execute(
        f"SELECT count(*) FROM {SCHEMA}.profile AS p WHERE p.followers <>"
        f" (SELECT count(*) FROM {SCHEMA}.follow_counter_cache AS f WHERE f.subject = p.id)"
    ).fetchone()[0]
    return bad == 0


def _deltas(conn: psycopg.Connection) -> int:
    return conn.execute(
        "SELECT count(*) FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id WHERE c.name = %s",
        (COUNTER,),
    ).fetchone()[0]


def _bulk(conn: psycopg.Connection) -> dict:
    """One 100,000-row INSERT ... SELECT over 100 keys, into the untracked and the tracked table."""
    conn.execute("CALL tally.compact()")
    out: dict = {"rows": 100_000, "keys": 100}
    for kind in ("untracked", "tracked"):
        t = time.perf_counter()
        conn.execute(
            f"INSERT INTO {SCHEMA}.follow_{kind} (subject, follower)"
            " SELECT g % 100, g FROM generate_series(1, 100000) AS g"
        )
        out[f"{kind}_s"] = round(time.perf_counter() - t, 3)
    out["deltas"] = _deltas(conn)
    return out


def _deadlocks(dsn: str, kind: str, threads: int, seconds: float) -> dict:
    """``threads`` sessions inserting 10 rows per statement over 20 keys in a
    random order, for ``seconds``: statements committed and deadlocks."""
    stop = threading.Event()
    done = [0] * threads
    deadlocks = [0] * threads

    def run(n: int) -> None:
        rnd = random.Random(n)
        with psycopg.connect(dsn, autocommit=True) as c:
            while not stop.is_set():
                keys = rnd.sample(range(100, 120), 10)
                try:
                    c.execute(
                        f"INSERT INTO {SCHEMA}.follow_{kind} (subject, follower)"
                        " SELECT k, %s FROM unnest(%s::int[]) WITH ORDINALITY AS u (k, o) ORDER BY o",
                        (n, keys),
                    )
                    done[n] += 1
                except psycopg.errors.DeadlockDetected:
                    deadlocks[n] += 1

    workers = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(threads)]
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join(timeout=60)
    return {"kind": kind, "threads": threads, "seconds": seconds, "statements": sum(done), "deadlocks": sum(deadlocks)}


def measure(dsn: str, conn: psycopg.Connection, pg: PgBench, plan: Plan) -> dict:
    setup(conn)
    rounds: list[dict[str, int]] = []
    with Compactor(dsn, seconds=len(KINDS) * (plan.hot_seconds + 1) + 1, interval=0.5):
        for i in range(plan.hot_rounds):
            tps: dict[str, int] = {}
            for kind in KINDS:
                t, _ = pg.run(
                    f"tracked_{kind}", _script(kind), plan.clients, plan.hot_seconds, f"round {i + 1}: {kind}"
                )
                tps[kind] = round(t)
            rounds.append(tps)

    def med(a: str, b: str) -> float:
        return round(statistics.median(r[a] / r[b] for r in rounds if r[b]), 2)

    bulk = _bulk(conn)
    seconds = max(2.0, plan.hot_seconds)
    deadlocks = [_deadlocks(dsn, kind, plan.clients, seconds) for kind in ("counter_cache", "tracked")]
    conn.execute("CALL tally.compact()")
    return {
        "clients": plan.clients,
        "rounds": rounds,
        "tracked_vs_untracked": med("tracked", "untracked"),
        "tracked_vs_counter_cache": med("tracked", "counter_cache"),
        "bulk": bulk,
        "deadlocks": deadlocks,
        "exact": _exact(conn),
    }
