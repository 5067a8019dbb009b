"""tally beside the usual ways of counting, in one run (`make bench`).

In this order (each case is a module of bench/cases/ that says what it measures):
single increments, each its own transaction, pgbench clients on one hot key
(cases/single.py), the hot path again in interleaved rounds whose median
ratios the targets use (cases/hot_path.py), Redis INCR (cases/redis_incr.py),
batch increments (cases/batch.py), deltas folded per second (cases/fold.py),
compactor lag under sustained maximum ingest (cases/lag.py), reads vs
history size (cases/history.py), a table's rows counted by tally's triggers
beside a counter-cache trigger (cases/tracked.py), and the Python client from many threads of
one process (cases/client.py). `--only single` runs just the first two and
writes single.json; `--only client` just the last and writes client.json.

A full run writes latest.json and latest.png into the output directory
(default bench/results/), judged by the targets of bench/thresholds.toml.
Exits 1 if a case stored a different count than it committed.

Usage (from the repository root): python -m bench.run --dsn "..." [--quick] [--only client|single] [--out DIR] [--keep]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from bench.cases import (
    batch,
    client,
    fold,
    history,
    hot_path,
    lag,
    plain_compactors,
    redis_incr,
    single,
    sustained,
    tracked,
)
from bench.counters import drop_counter
from bench.plan import COUNTERS, FULL, QUICK, SCHEMA, Plan
from bench.report import RESULTS, say, shown, tables, write_json
from bench.report.chart import draw
from bench.report.targets import judge
from bench.runners import PgBench, environment


def _cleanup(conn: psycopg.Connection) -> None:
    conn.execute("RESET search_path")
    conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    for (name,) in conn.execute(
        "SELECT name FROM tally.counters WHERE name = ANY(%s::text[]) ORDER BY name", (list(COUNTERS),)
    ).fetchall():
        drop_counter(conn, name)


@contextmanager
def _session(
    dsn: str, plan: Plan, quick: bool, keep: bool, only: str | None
) -> Iterator[tuple[psycopg.Connection, PgBench, dict]]:
    """A connection and a pgbench runner on a database cleared of an earlier
    run's leftovers, the results begun with the environment; cleared again after."""
    pg = PgBench(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        _cleanup(conn)
        if only != "client":
            conn.execute(f"CREATE SCHEMA {SCHEMA}")
        res: dict = {"environment": environment(conn, plan.__dict__)}
        tables.header(res, plan, quick, only)
        try:
            if only != "client":
                pg.statements = single.enable_statements(conn)
            yield conn, pg, res
        finally:
            pg.close()
            if not keep:
                _cleanup(conn)


def _single_pass(dsn: str, conn: psycopg.Connection, pg: PgBench, plan: Plan) -> tuple[list[dict], dict]:
    """The single increments, then the hot path's interleaved rounds: (their rows, the rounds' summary)."""
    tables.step("Single increments, each its own transaction, one hot key")
    rows = shown(single.run(dsn, conn, pg, plan), tables.single_line)
    tables.step("The hot path again, interleaved rounds")
    rounds, exact = [], True
    for tps, ok in hot_path.run(dsn, conn, pg, plan):
        rounds.append(tps)
        exact = exact and ok
        tables.hot_round_line(len(rounds), tps)
    return rows, hot_path.summary(plan, rounds, exact)


def _client(dsn: str, conn: psycopg.Connection, plan: Plan) -> dict:
    tables.step(f"The Python client, {plan.client_threads} threads of one process, one hot key")
    return client.summary(plan, shown(client.run(dsn, conn, plan), tables.client_line))


def _out_dir(out_dir: Path | None) -> Path:
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def run(dsn: str, out_dir: Path | None = None, quick: bool = False, keep: bool = False) -> dict:
    """Run every case against the database of ``dsn`` (migrated); returns the results."""
    plan = QUICK if quick else FULL
    out_dir = _out_dir(out_dir)
    t_start = time.monotonic()
    with _session(dsn, plan, quick, keep, None) as (conn, pg, res):
        rows, res["hot"] = _single_pass(dsn, conn, pg, plan)
        res["single"] = rows + shown(redis_incr.run(plan), tables.single_line)
        tables.step("Batch increments")
        res["batch"] = batch.measure(conn, pg, plan)
        tables.batch_line(res["batch"])
        res["batch_event_ids"] = batch.measure(conn, pg, plan, event_ids=True)
        tables.batch_line(res["batch_event_ids"])
        tables.step("Folding")
        res["fold_rate"] = shown(fold.run(conn, plan), tables.fold_line)
        tables.step("Plain compactors sharing the work (1 vs 2, the same backlog)")
        res["plain_compactors"] = plain_compactors.measure(dsn, conn, plan)
        tables.plain_compactors_line(res["plain_compactors"])
        tables.step("Sustained batch ingest with two plain compactors (10,000 and 1,000,000 keys)")
        res["sustained"] = sustained.measure(dsn, conn, pg, plan)
        for r in res["sustained"]:
            tables.sustained_line(r)
        tables.step("Lag under sustained maximum ingest")
        res["lag"] = lag.measure(dsn, conn, pg, plan)
        tables.lag_line(res["lag"])
        tables.step("Reads vs history size")
        res["history"] = shown(history.run(conn, plan), tables.history_line)
        tables.step("Counting a table's rows: untracked, tracked by tally, a counter-cache trigger")
        res["tracked"] = tracked.measure(dsn, conn, pg, plan)
        tables.tracked_lines(res["tracked"])
        res["client"] = _client(dsn, conn, plan)
    res["ratios"] = single.ratios(res["single"])
    res["targets"] = judge(res, ("single", "batch", "reads", "client"))
    res["seconds"] = round(time.monotonic() - t_start, 1)
    tables.full(res)
    write_json(out_dir / "latest.json", res)
    drew = draw(res, out_dir / "latest.png")
    say(f"\nwritten {out_dir / 'latest.json'}" + (f" and {out_dir / 'latest.png'}" if drew else ""))
    say(f"bench took {res['seconds']:.0f} s")
    return res


def run_only(part: str, dsn: str, out_dir: Path | None = None, quick: bool = False, keep: bool = False) -> dict:
    """One part alone (``--only``), judged by its own targets: ``single``, the
    single-increment pgbench cases (no Redis) and the hot-path rounds, writes
    single.json; ``client``, the Python client case, writes client.json."""
    plan = QUICK if quick else FULL
    out_dir = _out_dir(out_dir)
    with _session(dsn, plan, quick, keep, part) as (conn, pg, res):
        if part == "single":
            res["single"], res["hot"] = _single_pass(dsn, conn, pg, plan)
        else:
            res["client"] = _client(dsn, conn, plan)
    if part == "single":
        res["ratios"] = single.ratios(res["single"])
    res["targets"] = judge(res, (part,))
    tables.only(res)
    write_json(out_dir / f"{part}.json", res)
    say(f"\nwritten {out_dir / f'{part}.json'}")
    return res


def exact(res: dict) -> bool:
    """Every case stored exactly the count it committed."""
    return (
        all(r.get("exact", True) for r in res["single"])
        and all(c.get("exact", True) for c in res["client"]["cases"])
        and res["hot"]["exact"]
        and res["batch"]["exact"]
        and res["batch_event_ids"]["exact"]
        and res["lag"]["exact"]
        and all(h["exact"] for h in res["history"])
        and res["tracked"]["exact"]
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.run", description="tally beside UPDATE, upserts, a raw INSERT and Redis (make bench)"
    )
    ap.add_argument("--dsn", default=os.environ.get("TALLY_DSN"), help="a migrated database (default: $TALLY_DSN)")
    ap.add_argument("--quick", action="store_true", help="a small, fast run (a smoke test; numbers mean little)")
    ap.add_argument("--out", type=Path, help=f"directory for latest.json and latest.png (default: {RESULTS})")
    ap.add_argument("--keep", action="store_true", help="keep the bench counters and tables afterwards")
    ap.add_argument(
        "--only",
        choices=["client", "single"],
        help="run one part alone: client = the Python client from 16 threads (writes client.json);"
        " single = the single-increment pgbench cases without Redis, with the hot-path ratios (single.json)",
    )
    args = ap.parse_args(argv)
    if not args.dsn:
        ap.error("pass --dsn or set TALLY_DSN")
    if args.only == "client":
        res = run_only("client", args.dsn, out_dir=args.out, quick=args.quick, keep=args.keep)
        if not all(c.get("exact", True) for c in res["client"]["cases"]):
            print("tally bench: a client case stored a different count than it acknowledged", file=sys.stderr)
            return 1
        return 0
    if args.only == "single":
        res = run_only("single", args.dsn, out_dir=args.out, quick=args.quick, keep=args.keep)
        if not (all(r["exact"] for r in res["single"]) and res["hot"]["exact"]):
            print("tally bench: a single case stored a different count than it committed", file=sys.stderr)
            return 1
        return 0
    res = run(args.dsn, out_dir=args.out, quick=args.quick, keep=args.keep)
    if not exact(res):
        print("tally bench: some case stored a different count than it committed (see latest.json)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
