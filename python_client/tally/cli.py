"""The ``tally`` command line: migrate, status, compact, demo."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[2]


def _dsn(args: argparse.Namespace) -> str:
    dsn = args.dsn or os.environ.get("TALLY_DSN")
    if not dsn:
        sys.exit("tally: pass --dsn or set TALLY_DSN")
    return dsn


def cmd_migrate(args: argparse.Namespace) -> int:
    from alembic import command
    from alembic.config import Config

    os.environ["TALLY_DSN"] = _dsn(args)
    cfg = Config(str(REPO / "alembic.ini"))
    if args.revision.startswith("-") or args.revision == "base":
        command.downgrade(cfg, args.revision)
    else:
        command.upgrade(cfg, args.revision)
    print(f"tally: migrated to {args.revision}")
    return 0


def cmd_compact(args: argparse.Namespace) -> int:
    with psycopg.connect(_dsn(args), autocommit=True) as conn:
        conn.execute("SET application_name = 'tally compactor'")
        deadline = time.monotonic() + args.duration if args.duration else None
        while True:
            conn.execute("CALL tally.compact(%s::integer)", (args.max_deltas,))
            if not args.loop or (deadline is not None and time.monotonic() >= deadline):
                return 0
            time.sleep(args.interval)


def cmd_status(args: argparse.Namespace) -> int:
    with psycopg.connect(_dsn(args), autocommit=True) as conn:
        counters = conn.execute(
            "SELECT name, array_to_string(granularities, ','), CASE WHEN durable THEN 'durable' ELSE 'fast' END"
            " FROM tally.counters ORDER BY name"
        ).fetchall()
        print(f"{'counter':<24} {'granularities':<30} durability")
        for name, grans, mode in counters:
            print(f"{name:<24} {grans:<30} {mode}")
        lag = conn.execute(
            "SELECT sum(pending_deltas), max(oldest_pending_age), max(last_fold_at) FROM tally.compactor_lag"
        ).fetchone()
        print(f"\npending deltas: {lag[0]}   oldest pending: {lag[1]}   last fold: {lag[2]}")
        print("\nhealth:")
        for check, status, reason in conn.execute('SELECT "check", status, reason FROM tally.health'):
            print(f"  {check:<10} {status:<9} {reason}")
    return 0


def cmd_metrics(args: argparse.Namespace) -> int:
    from tally.metrics import collect, serve

    if args.serve:
        serve(_dsn(args), args.host, args.serve)
        return 0
    with psycopg.connect(_dsn(args), autocommit=True) as conn:
        sys.stdout.write(collect(conn))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from tally.demo import run_demo

    return run_demo(_dsn(args), seconds=args.seconds, writers=args.writers)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tally", description="Exact counters and rollups inside PostgreSQL")
    p.add_argument("--dsn", help="libpq connection string or URL (default: $TALLY_DSN)")
    sub = p.add_subparsers(dest="cmd", required=True)

    m = sub.add_parser("migrate", help="alembic upgrade (or downgrade) the database")
    m.add_argument("revision", nargs="?", default="head", help="head (default), base, or a revision")
    m.set_defaults(fn=cmd_migrate)

    c = sub.add_parser("compact", help="fold pending deltas (CALL tally.compact())")
    c.add_argument("--loop", action="store_true", help="keep folding (for databases without pg_cron)")
    c.add_argument("--interval", type=float, default=1.0, help="seconds between folds in --loop")
    c.add_argument("--duration", type=float, default=0, help="stop --loop after this many seconds")
    c.add_argument("--max-deltas", type=int, default=100_000, help="deltas per fold transaction")
    c.set_defaults(fn=cmd_compact)

    s = sub.add_parser("status", help="counters and compactor lag")
    s.set_defaults(fn=cmd_status)

    mt = sub.add_parser("metrics", help="tally's views as Prometheus metrics (print, or --serve PORT)")
    mt.add_argument("--serve", type=int, metavar="PORT", help="serve /metrics over HTTP on this port")
    mt.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    mt.set_defaults(fn=cmd_metrics)

    d = sub.add_parser("demo", help="drive a short realistic load and show the results")
    d.add_argument("--seconds", type=float, default=15)
    d.add_argument("--writers", type=int, default=4)
    d.set_defaults(fn=cmd_demo)

    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except psycopg.Error as exc:
        diag = exc.diag
        print(f"tally: {diag.message_primary or exc}", file=sys.stderr)
        if diag.message_hint:
            print(f"hint: {diag.message_hint}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
