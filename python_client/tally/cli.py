"""The ``tally`` command line: migrate, status, compact, metrics, demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import psycopg

from tally.connect import connect

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


def _logging(args: argparse.Namespace) -> None:
    """Log to stderr with UTC timestamps; -v adds debug lines, -q keeps
    warnings and errors only."""
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger("tally")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO)


def cmd_compact(args: argparse.Namespace) -> int:
    if args.loop:
        from tally.compactor import run_workers

        _logging(args)
        return run_workers(
            _dsn(args),
            args.workers,
            interval=args.interval,
            max_deltas=args.max_deltas,
            maintain_every=args.maintain_every,
            duration=args.duration,
            stop_timeout=args.stop_timeout,
        )
    if args.workers != 1:
        raise SystemExit("tally compact: --workers needs --loop (a single fold: run one `tally compact`)")
    with connect(_dsn(args), application_name="tally compactor") as conn:
        conn.execute("CALL tally.compact(%s::integer)", (args.max_deltas,))
    return 0


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
    with connect(_dsn(args)) as conn:
        role, replayed_at, streaming, standbys = conn.execute(
            "SELECT role, replayed_at, streaming, standbys FROM tally.node_status()"
        ).fetchone()
        if role == "standby":
            print(
                f"Node: hot standby, {'streaming' if streaming else 'NOT streaming'} from a primary;"
                f" replayed up to {f'{replayed_at:%Y-%m-%d %H:%M:%S%z}' if replayed_at else 'its start'}."
                "\nReads here leave out fast counters' pending deltas (UNLOGGED, not replicated): see"
                " 'complete' below.\n"
            )
        else:
            print(f"Node: primary, {standbys} streaming standbys\n")
        counters = conn.execute(
            "SELECT counter, durability, array_to_string(granularities, ','), pending_deltas,"
            " extract(epoch FROM oldest_pending_age)::float8, pending_complete"
            " FROM tally.counter_status ORDER BY counter"
        ).fetchall()
        print("Counters")
        print(
            _table(
                ["counter", "durability", "granularities", "pending", "oldest pending", "complete"],
                [(n, d, g, f"{p:,}", _age(a), "yes" if c else "no") for n, d, g, p, a, c in counters],
                right={3, 4},
            )
        )
        pending, oldest, last_fold, shards = conn.execute(
            "SELECT coalesce(sum(pending_deltas), 0)::bigint, extract(epoch FROM max(oldest_pending_age))::float8,"
            " max(last_fold_at), count(*) FILTER (WHERE pending_deltas > 0) FROM tally.compactor_lag"
        ).fetchone()
        runs = conn.execute(
            "SELECT count(*), coalesce(sum(deltas), 0) FROM tally.compactor_runs"
            " WHERE outcome = 'ok' AND started_at + duration > now() - interval '1 hour'"
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
    from tally.metrics import describe, scrape, serve

    _logging(args)
    if args.serve:
        serve(_dsn(args), args.host, args.serve)
        return 0
    text, error = scrape(_dsn(args))
    sys.stdout.write(text)
    if error is not None:
        print(f"tally: tally_up 0: {describe(error)}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from tally.demo import run_demo

    return run_demo(_dsn(args), seconds=args.seconds, writers=args.writers)


def _seconds(minimum: float, strict: bool = True):
    """An argparse type: a number of seconds above (or at least) `minimum`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if value < minimum or (strict and value == minimum) or value != value:
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum:g}, got {text}")
        return value

    return parse


def _workers(text: str) -> int:
    """An argparse type: a number of parallel compactors, 1 to 64 (the key
    slices a fold can be split into, tally._slice_buckets())."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of workers: {text!r}") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"must be between 1 and 64, got {text}")
    return value


def _log_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-v", "--verbose", action="store_true", help="log debug lines too")
    g.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tally", description="Exact counters and rollups inside PostgreSQL")
    p.add_argument("--dsn", help="libpq connection string or URL (default: $TALLY_DSN)")
    sub = p.add_subparsers(dest="cmd", required=True)

    m = sub.add_parser("migrate", help="alembic upgrade (or downgrade) the database")
    m.add_argument("revision", nargs="?", default="head", help="head (default), base, or a revision")
    m.set_defaults(fn=cmd_migrate)

    c = sub.add_parser("compact", help="fold pending deltas (CALL tally.compact()); --loop: run as a service")
    c.add_argument("--loop", action="store_true", help="keep folding, as a service (for databases without pg_cron)")
    c.add_argument("--interval", type=_seconds(0), default=1.0, help="seconds between folds in --loop (default 1)")
    c.add_argument(
        "--duration",
        type=_seconds(0, strict=False),
        default=0,
        help="stop --loop after this many seconds (default: never)",
    )
    c.add_argument("--max-deltas", type=int, default=1_000_000, help="deltas per fold transaction")
    c.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="--loop: N compactors folding at once, one key slice each (default 1; up to 64)",
    )
    c.add_argument(
        "--maintain-every",
        type=_seconds(0),
        default=3600.0,
        metavar="SECONDS",
        help="--loop runs tally.maintain() at start and then this often (default 3600)",
    )
    c.add_argument(
        "--stop-timeout",
        type=_seconds(0, strict=False),
        default=10.0,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, let a call in flight finish this long before abandoning it (default 10)",
    )
    _log_options(c)
    c.set_defaults(fn=cmd_compact)

    s = sub.add_parser("status", help="counters, compactor lag and health (exit 2 if a check is critical)")
    s.set_defaults(fn=cmd_status)

    mt = sub.add_parser("metrics", help="tally's views as Prometheus metrics (print, or --serve PORT)")
    mt.add_argument("--serve", type=int, metavar="PORT", help="serve /metrics over HTTP on this port")
    mt.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    _log_options(mt)
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
