"""tally on Citus beside single-node tally, in one run (`make bench-citus`).

Three databases, each freshly migrated: single-node tally (the plain
cluster, `make db`), tally distributed on the Citus cluster with one worker
registered, and with two. Against each, interleaved (so that the three see
about the same load on a shared machine), the cases of bench/cases/citus/:

1. single increments, each its own transaction (pgbench, 16 clients), over
   100,000 keys, on one hot key, and the floor of a write (ingest.py);
2. batches: tally.increment_counters of 1,000 (2 clients) and of 100
   (ingest.py);
   (1. and 2. through the coordinator, and through the key's worker: pgbench
   on worker 1 with keys whose shards are there; on the single node the
   same scripts)
3. fold rates on a prepared backlog, live and a backfill (fold.py), and the
   time of a CALL with one delta pending (step_cost.py).

Per case and node, the CPU time the node's processes used (the postmaster's
tree, read from /proc: every node runs on this machine): CPU per delegated
increment on the coordinator and on the workers, deltas folded per worker
CPU second. These are what the model in docs/scale-out.md needs. Every case
checks that the totals equal what was committed.

Writes citus.json and citus.txt (default: bench/results/).

Usage (from the repository root): python -m bench.citus --plain DSN --citus1 DSN --citus2 DSN
[--seconds 10] [--clients 16] [--live 300000] [--backfill 200000] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg

from bench.cases.citus import fold, ingest, step_cost
from bench.cases.citus.nodes import Target, citus_workers
from bench.report import RESULTS, say, write_json
from bench.report import citus as report
from bench.runners import PgBench, ratio, utc_now


def ratios(res: dict) -> dict:
    out: dict = {}
    for case, rows in res["ingest"].items():
        s = rows["single"]["increments_per_s"]
        out[f"{case}: citus2 / single"] = ratio(rows["citus2"]["increments_per_s"], s)
        out[f"{case}: citus1 / single"] = ratio(rows["citus1"]["increments_per_s"], s)
    for case, rows in res["fold"].items():
        out[f"fold {case}: citus2 / citus1"] = ratio(rows["citus2"]["deltas_per_s"], rows["citus1"]["deltas_per_s"])
        out[f"fold {case}: citus1 / single"] = ratio(rows["citus1"]["deltas_per_s"], rows["single"]["deltas_per_s"])
        out[f"fold {case}: citus2 / single"] = ratio(rows["citus2"]["deltas_per_s"], rows["single"]["deltas_per_s"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.citus", description="tally on Citus vs single node (make bench-citus)"
    )
    ap.add_argument("--plain", required=True, help="single-node tally, a fresh migrated database")
    ap.add_argument("--citus1", required=True, help="the Citus coordinator of a database with one worker")
    ap.add_argument("--citus2", required=True, help="the Citus coordinator of a database with two workers")
    ap.add_argument("--seconds", type=int, default=10, help="each pgbench case (default 10)")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--live", type=int, default=300_000, help="deltas of the live backlog")
    ap.add_argument("--backfill", type=int, default=200_000, help="deltas of the backfill backlog")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    t_start = time.monotonic()
    targets = [
        Target("single", "single node", args.plain),
        Target("citus1", "Citus, 1 worker", args.citus1, citus_workers(args.citus1)),
        Target("citus2", "Citus, 2 workers", args.citus2, citus_workers(args.citus2)),
    ]
    if len(targets[1].workers) != 1 or len(targets[2].workers) != 2:
        ap.error("--citus1 needs a database with one worker, --citus2 one with two (scripts/citus.sh fresh-db NAME W)")
    with psycopg.connect(args.citus2, autocommit=True) as c:
        citus = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'").fetchone()[0]
        shards = c.execute(
            "SELECT shard_count FROM citus_tables WHERE table_name = 'tally.delta'::regclass"
        ).fetchone()[0]
    res: dict = {
        "environment": {
            "when": utc_now(),
            "cores": os.cpu_count(),
            "load_average_at_start": list(os.getloadavg()),
            "citus": citus,
            "shard_count": shards,
            "seconds": args.seconds,
            "clients": args.clients,
        },
        "targets": [{"key": t.key, "label": t.label, "nodes": list(t.pids)} for t in targets],
    }
    say(f"tally bench-citus: Citus {citus}, {shards} shards, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    for t in targets:
        ingest.make_keys(t.workers[0] if t.workers else t.dsn)
    pgs = {t.key: PgBench(t.dsn) for t in targets}
    try:
        res["ingest"] = {}
        for case in ingest.CASES:
            say(f"\n{case.label}")
            res["ingest"][case.key] = {}
            for t in targets:
                r = ingest.measure(t, pgs[t.key], case, args.clients, args.seconds)
                report.ingest_line(t, r)
                res["ingest"][case.key][t.key] = r
    finally:
        for pg in pgs.values():
            pg.close()
    say("\nfolds (the rollup partitions made first)")
    for t in targets:
        fold.warm_up(t)
    res["fold"] = {}
    for case in fold.CASES:
        n = args.live if case[0] == "live" else args.backfill
        res["fold"][case[0]] = {}
        for t in targets:
            r = fold.measure(t, case, n)
            report.fold_line(t, r)
            res["fold"][case[0]][t.key] = r
    res["step_cost"] = {}
    for t in targets:
        res["step_cost"][t.key] = step_cost.measure(t)
        report.step_line(t, res["step_cost"][t.key])
    res["ratios"] = ratios(res)
    res["exact"] = all(r["exact"] for rows in (*res["ingest"].values(), *res["fold"].values()) for r in rows.values())
    res["exact"] = res["exact"] and all(r["exact"] for r in res["step_cost"].values())
    res["seconds"] = round(time.monotonic() - t_start)
    lines = report.table(res)
    say("")
    for line in lines:
        say(line)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "citus.json", res)
    (args.out / "citus.txt").write_text("# make bench-citus\n" + "\n".join(lines) + "\n")
    say(f"\nwritten {args.out / 'citus.json'} and citus.txt ({res['seconds']} s)")
    if not res["exact"]:
        print("tally bench-citus: a case stored a different count than it committed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
