"""The ``tally`` command line: migrate, status, compact, metrics, demo."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg

PACKAGE = Path(__file__).resolve().parent
# The source checkout, when the package runs from one (an editable install).
REPO = PACKAGE.parents[1]


def _dsn(args: argparse.Namespace) -> str:
    dsn = args.dsn or os.environ.get("TALLY_DSN")
    if not dsn:
        sys.exit("tally: pass --dsn or set TALLY_DSN")
    return dsn


def alembic_ini() -> Path:
    """The migrations' alembic.ini: shipped in the package (tally/_schema/, built
    from the repository's alembic.ini, migrations/, sql/ and plpython/), else
    the source checkout's (an editable install)."""
    for ini in (PACKAGE / "_schema" / "alembic.ini", REPO / "alembic.ini"):
        if ini.is_file():
            return ini
    sys.exit(
        f"tally migrate: no alembic.ini in {PACKAGE / '_schema'} nor in {REPO}\n"
        "hint: reinstall tally from its wheel or its source tree (pip install ./python_client)"
    )


def cmd_migrate(args: argparse.Namespace) -> int:
    try:
        from alembic import command
        from alembic.config import Config
    except ImportError:
        sys.exit(
            "tally migrate: alembic is not installed\n"
            "hint: pip install 'tally[migrate]' (alembic and SQLAlchemy), then run it again"
        )

    os.environ["TALLY_DSN"] = _dsn(args)
    cfg = Config(str(alembic_ini()))
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


def _table(headers: list[str], rows: list[tuple], right: set[int] | None = None) -> str:
    """A plain-text table: columns as wide as their widest cell."""
    right = right or set()
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in cells] or ["(none)"]
    return "\n".join(x.rstrip() for x in out)


def _age(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def cmd_status(args: argparse.Namespace) -> int:
    with psycopg.connect(_dsn(args), autocommit=True) as conn:
        counters = conn.execute(
            """
            SELECT c.name,
                   CASE WHEN c.durable THEN 'durable' ELSE 'fast' END,
                   array_to_string(c.granularities, ','),
                   coalesce(p.pending, 0),
                   extract(epoch FROM now() - p.oldest)::float8
            FROM tally.counters AS c
            LEFT JOIN (
                SELECT d.counter_id, count(*) AS pending, min(d.written_at) AS oldest
                FROM tally.delta AS d GROUP BY d.counter_id
            ) AS p ON p.counter_id = c.id
            ORDER BY c.name
            """
        ).fetchall()
        print("Counters")
        print(
            _table(
                ["counter", "durability", "granularities", "pending", "oldest pending"],
                [(n, d, g, f"{p:,}", _age(a)) for n, d, g, p, a in counters],
                right={3, 4},
            )
        )
        pending, oldest, last_fold, shards = conn.execute(
            "SELECT coalesce(sum(pending_deltas), 0), extract(epoch FROM max(oldest_pending_age))::float8,"
            " max(last_fold_at), count(*) FILTER (WHERE pending_deltas > 0) FROM tally.compactor_lag"
        ).fetchone()
        runs = conn.execute(
            "SELECT count(*), coalesce(sum(deltas), 0) FROM tally.fold_runs"
            " WHERE outcome = 'ok' AND finished_at > now() - interval '1 hour'"
        ).fetchone()
        print("\nCompactor lag")
        print(
            _table(
                ["pending deltas", "shards with pending", "oldest pending", "last fold", "folds (1 h)", "folded (1 h)"],
                [
                    (
                        f"{pending:,}",
                        shards,
                        _age(oldest) or "0.0 s",
                        f"{last_fold:%Y-%m-%d %H:%M:%S%z}" if last_fold else "never",
                        f"{runs[0]:,}",
                        f"{runs[1]:,}",
                    )
                ],
                right={0, 1, 2, 4, 5},
            )
        )
        health = conn.execute('SELECT "check", status, reason FROM tally.health').fetchall()
        print("\nHealth")
        print(_table(["check", "status", "reason"], health))
        worst = {s for _, s, _ in health}
    return 2 if "critical" in worst else 0


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

    s = sub.add_parser("status", help="counters, compactor lag and health (exit 2 if a check is critical)")
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
