"""tally's SQL views as Prometheus metrics (text exposition format 0.0.4).

Every query reads a view granted to `tally_reader`, so a monitoring login
needs that role and nothing else. Every sample carries a `database` label
(current_database(); the DSN's database name while it cannot be reached).

Metric names (all prefixed `tally_`):

| metric | type | labels | from |
|---|---|---|---|
| tally_up | gauge (1 every query answered, 0 not) | | the scrape itself |
| tally_pending_deltas | gauge | shard, durability, active | tally.compactor_lag |
| tally_oldest_pending_seconds | gauge | | tally.compactor_lag |
| tally_last_fold_age_seconds | gauge | | tally.compactor_lag |
| tally_fold_runs_last_hour | gauge | outcome | tally.compactor_runs |
| tally_deltas_folded_last_hour | gauge | | tally.compactor_runs |
| tally_database_deadlocks_total | counter | | tally.deadlocks |
| tally_fold_deadlocks_retried_total | counter | | tally.deadlocks |
| tally_fold_failures_retried_total | counter | | tally.deadlocks |
| tally_folds_abandoned_total | counter | | tally.deadlocks |
| tally_drift_inconsistent_keys | gauge | counter | tally.drift |
| tally_drift_drifting_keys | gauge | counter | tally.drift |
| tally_drift_max_abs | gauge | counter | tally.drift |
| tally_drift_checked_timestamp_seconds | gauge | counter | tally.drift |
| tally_health_status | gauge (0 ok, 1 warn, 2 critical) | check | tally.health |
| tally_crash_resets_total | counter | | tally.crash_reset_log |
| tally_counters | gauge | | tally.counter_status |
| tally_standby | gauge (1 on a hot standby, 0 on a primary) | | tally.node_status() |

(every one also labelled `database`). When the database cannot be reached
or a query fails, a scrape answers `tally_up 0` and nothing else: no stale
or partial figures.
"""

from __future__ import annotations

import getpass
import http.server
import logging
import os
import signal
import threading
from collections.abc import Iterable

import psycopg
from psycopg.conninfo import conninfo_to_dict

from tally.connect import connect as pooled_connect

STATUS = {"ok": 0, "warn": 1, "critical": 2}
CONNECT_TIMEOUT = 5  # seconds, unless the DSN (or PGCONNECT_TIMEOUT) says otherwise
STATEMENT_TIMEOUT = "10s"  # a scrape never hangs on a lock or a slow view

log = logging.getLogger("tally.metrics")


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, object]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class _Family:
    def __init__(self, name: str, kind: str, help_: str, database: str) -> None:
        self.name, self.kind, self.help, self.database = name, kind, help_, database
        self.samples: list[tuple[dict[str, object], float]] = []

    def add(self, value: object, **labels: object) -> None:
        if value is not None:
            self.samples.append(({"database": self.database, **labels}, float(value)))

    def render(self) -> Iterable[str]:
        # Text format 0.0.4: a counter's HELP/TYPE name is its sample name, *_total.
        name = self.name + ("_total" if self.kind == "counter" else "")
        yield f"# HELP {name} {self.help}"
        yield f"# TYPE {name} {self.kind}"
        for labels, value in self.samples:
            yield f"{name}{_labels(labels)} {value!r}"


def _render(families: Iterable[_Family]) -> str:
    return "\n".join(line for family in families for line in family.render()) + "\n"


def _up(up: bool, database: str) -> _Family:
    fam = _Family("tally_up", "gauge", "1 when the database answered every query of this scrape, 0 when not.", database)
    fam.add(1 if up else 0)
    return fam


def collect(conn: psycopg.Connection) -> str:
    """Read tally's views once and render them as Prometheus text, with
    tally_up 1 (a failing query raises: see `scrape`)."""
    (database,) = conn.execute("SELECT current_database()::text").fetchone()
    fam: dict[str, _Family] = {"tally_up": _up(True, database)}

    def f(name: str, kind: str, help_: str) -> _Family:
        fam[name] = _Family(name, kind, help_, database)
        return fam[name]

    pending = f("tally_pending_deltas", "gauge", "Deltas waiting to be folded, per delta shard.")
    for shard, durability, active, n in conn.execute(
        "SELECT shard_table, durability, active, pending_deltas FROM tally.compactor_lag"
    ):
        pending.add(n, shard=shard, durability=durability, active=str(active).lower())
    oldest, last_fold = conn.execute(
        "SELECT coalesce(extract(epoch FROM max(oldest_pending_age)), 0),"
        " extract(epoch FROM now() - max(last_fold_at)) FROM tally.compactor_lag"
    ).fetchone()
    f("tally_oldest_pending_seconds", "gauge", "Age of the oldest increment not folded yet.").add(oldest)
    f("tally_last_fold_age_seconds", "gauge", "Seconds since the last successful fold.").add(last_fold)

    runs = f("tally_fold_runs_last_hour", "gauge", "Compactor fold attempts in the last hour, by outcome.")
    folded = 0
    for outcome, n, deltas in conn.execute(
        "SELECT o.outcome, count(r.id), coalesce(sum(r.deltas), 0)"
        " FROM (VALUES ('ok'), ('retried'), ('failed')) AS o (outcome)"
        " LEFT JOIN tally.compactor_runs AS r ON r.outcome = o.outcome AND r.started_at > now() - interval '1 hour'"
        " GROUP BY o.outcome ORDER BY o.outcome"
    ):
        runs.add(n, outcome=outcome)
        folded += deltas
    f("tally_deltas_folded_last_hour", "gauge", "Deltas folded in the last hour.").add(folded)

    db, dl, other, abandoned = conn.execute(
        "SELECT database_deadlocks, fold_deadlocks_retried, fold_failures_retried, folds_abandoned FROM tally.deadlocks"
    ).fetchone()
    f("tally_database_deadlocks", "counter", "Deadlocks in this database since tally was installed.").add(db)
    f("tally_fold_deadlocks_retried", "counter", "Deadlocks tally's folds hit, rolled back and retried.").add(dl)
    f("tally_fold_failures_retried", "counter", "Other transient failures tally's folds retried.").add(other)
    f("tally_folds_abandoned", "counter", "Folds given up after the retry limit (deltas left pending).").add(abandoned)

    inconsistent = f("tally_drift_inconsistent_keys", "gauge", "Keys whose buckets did not add up, latest check.")
    drifting = f("tally_drift_drifting_keys", "gauge", "Keys off the source of truth, latest check.")
    max_abs = f("tally_drift_max_abs", "gauge", "Largest difference from the source of truth, latest check.")
    checked = f("tally_drift_checked_timestamp_seconds", "gauge", "When the latest drift check ran.")
    for counter, n_inc, n_drift, mx, at in conn.execute(
        "SELECT counter, inconsistent_keys, drifting_keys, max_abs_drift, extract(epoch FROM checked_at)"
        " FROM tally.drift WHERE checked_at IS NOT NULL"
    ):
        inconsistent.add(n_inc, counter=counter)
        drifting.add(n_drift, counter=counter)
        max_abs.add(mx, counter=counter)
        checked.add(at, counter=counter)

    health = f("tally_health_status", "gauge", "tally.health per check: 0 ok, 1 warn, 2 critical.")
    for check, status in conn.execute('SELECT "check", status FROM tally.health'):
        health.add(STATUS[status], check=check)

    (resets,) = conn.execute("SELECT count(*) FROM tally.crash_reset_log").fetchone()
    f("tally_crash_resets", "counter", "Crash resets that emptied the fast (unlogged) deltas.").add(resets)
    (counters,) = conn.execute("SELECT count(*) FROM tally.counter_status").fetchone()
    f("tally_counters", "gauge", "Counters defined.").add(counters)
    (role,) = conn.execute("SELECT role FROM tally.node_status()").fetchone()
    f(
        "tally_standby",
        "gauge",
        "1 on a hot standby (its reads leave out fast counters' pending deltas), 0 on a primary.",
    ).add(1 if role == "standby" else 0)

    return _render(fam.values())


def dsn_database(dsn: str) -> str:
    """The database a DSN names, as libpq would pick it (dbname, else
    $PGDATABASE, else the user name): the `database` label of a scrape that
    could not ask current_database()."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        params = {}
    return str(
        params.get("dbname")
        or os.environ.get("PGDATABASE")
        or params.get("user")
        or os.environ.get("PGUSER")
        or getpass.getuser()
    )


def connect(dsn: str, **kwargs: object) -> psycopg.Connection:
    """A connection for one scrape: connect_timeout 5 s unless the DSN or
    PGCONNECT_TIMEOUT set one; safe behind a pooler (tally.connect)."""
    if "connect_timeout" not in conninfo_to_dict(dsn) and "PGCONNECT_TIMEOUT" not in os.environ:
        kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT)
    kwargs.setdefault("autocommit", False)
    return pooled_connect(dsn, **kwargs)


def scrape(dsn: str) -> tuple[str, Exception | None]:
    """One scrape: connect, read every view in one read-only snapshot, render.
    Never raises for a database that is down or a query that fails: the
    text is then `tally_up 0` alone and the error is returned beside it."""
    try:
        with connect(dsn) as conn:
            conn.read_only = True
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (STATEMENT_TIMEOUT,))
            text = collect(conn)
            conn.rollback()
            return text, None
    except (psycopg.Error, OSError) as exc:
        return _render([_up(False, dsn_database(dsn))]), exc


def describe(exc: BaseException) -> str:
    """One line for a log: SQLSTATE (when the server sent one) and message."""
    sqlstate = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None and sqlstate else None
    message = " ".join((primary or str(exc)).split())
    return f"SQLSTATE {sqlstate}: {message}" if sqlstate else message


def serve(dsn: str, host: str, port: int) -> None:
    """Serve /metrics over HTTP until SIGTERM or SIGINT. Each scrape reads
    the views afresh on a new connection; a database that is down answers
    200 with tally_up 0, and the next scrape after it returns is whole again."""
    state = {"up": None}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            text, error = scrape(dsn)
            with lock:
                if error is not None and state["up"] is not False:
                    log.warning("tally_up 0: %s", describe(error))
                elif error is None and state["up"] is False:
                    log.info("tally_up 1: the database answers again")
                state["up"] = error is None
            body = text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with http.server.ThreadingHTTPServer((host, port), Handler) as httpd:
        log.info("serving http://%s:%s/metrics for database %s", host, port, dsn_database(dsn))
        try:
            httpd.serve_forever()
        finally:
            log.info("stopped")
