"""The compactor study (`make bench-compactor`), in this order (each a
module of bench/cases/compactor/ that says what it measures):

1. fold rate: deltas folded per second, 1,000 keys, every granularity,
   live, late and backfill timestamps (fold_rate.py);
2. lag under sustained maximum single-row ingest with tally.compact_loop
   running (lag.py);
3. a year of backfill while live increments keep arriving (backfill.py);
4. parallel folds: one compactor and two slice compactors on the same
   backfill, beside the ceiling of a fold (parallel.py, ceiling.py).

Usage (from the repository root): python -m bench.compactor --dsn "..." [--seconds 30]
[--fold-deltas 2000000] [--backfill 2000000] [--parallel-deltas 600000] [--repeat 2]
[--only parallel] [--out DIR]. Writes compactor.json (default: bench/results/).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.cases.compactor import backfill, fold_rate, lag, parallel
from bench.report import RESULTS, say, shown, write_json
from bench.report import compactor as report
from bench.runners import utc_now


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m bench.compactor", description="the compactor study (make bench-compactor)"
    )
    ap.add_argument("--dsn", default=os.environ.get("TALLY_DSN"), help="a migrated database (default: $TALLY_DSN)")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--fold-deltas", type=int, default=2_000_000)
    ap.add_argument("--backfill", type=int, default=2_000_000)
    ap.add_argument("--parallel-deltas", type=int, default=600_000)
    ap.add_argument("--repeat", type=int, default=2, help="runs of the parallel-folds comparison (default 2)")
    ap.add_argument("--only", choices=["parallel"], help="run only this part (its own compactor-parallel.json)")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"directory for compactor.json (default: {RESULTS})")
    args = ap.parse_args(argv)
    if not args.dsn:
        ap.error("pass --dsn or set TALLY_DSN")
    say("tally compactor benchmark")
    results: dict = {"when": utc_now()}
    if args.only is None:
        results["fold_rate"] = shown(fold_rate.run(args.dsn, args.fold_deltas), report.fold_rate_line)
        results["lag"] = lag.measure(args.dsn, args.seconds)
        report.lag_line(results["lag"])
        results["backfill"] = backfill.measure(args.dsn, args.backfill)
        report.backfill_line(results["backfill"])
    n, runs = args.parallel_deltas, []
    for run in parallel.run(args.dsn, n, repeat=args.repeat):
        runs.append(run)
        report.parallel_lines(len(runs), run, n, parallel.KEYS)
    results["parallel_folds"] = {"deltas": n, "keys": parallel.KEYS, "cores": os.cpu_count(), "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / ("compactor.json" if args.only is None else f"compactor-{args.only}.json")
    write_json(out, results)
    say(f"written {out}")


if __name__ == "__main__":
    main()
