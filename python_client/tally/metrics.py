"""tally's SQL views as Prometheus metrics (text exposition format 0.0.4).

Metric names (all prefixed `tally_`):

| metric | type | labels | from |
|---|---|---|---|
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
| tally_crash_resets_total | counter | | tally.crash_resets |
| tally_counters | gauge | | tally.counters |
"""

from __future__ import annotations

import http.server
import socketserver
from collections.abc import Iterable

import psycopg

STATUS = {"ok": 0, "warn": 1, "critical": 2}


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, object]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class _Family:
    def __init__(self, name: str, kind: str, help_: str) -> None:
        self.name, self.kind, self.help = name, kind, help_
        self.samples: list[tuple[dict[str, object], float]] = []

    def add(self, value: object, **labels: object) -> None:
        if value is not None:
            self.samples.append((labels, float(value)))

    def render(self) -> Iterable[str]:
        # Text format 0.0.4: a counter's HELP/TYPE name is its sample name, *_total.
        name = self.name + ("_total" if self.kind == "counter" else "")
        yield f"# HELP {name} {self.help}"
        yield f"# TYPE {name} {self.kind}"
        for labels, value in self.samples:
            yield f"{name}{_labels(labels)} {value!r}"


def collect(conn: psycopg.Connection) -> str:
    """Read tally's views once and render them as Prometheus text."""
    fam: dict[str, _Family] = {}

    def f(name: str, kind: str, help_: str) -> _Family:
        fam[name] = _Family(name, kind, help_)
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

    (resets,) = conn.execute("SELECT count(*) FROM tally.crash_resets").fetchone()
    f("tally_crash_resets", "counter", "Crash resets that emptied the fast (unlogged) deltas.").add(resets)
    (counters,) = conn.execute("SELECT count(*) FROM tally.counters").fetchone()
    f("tally_counters", "gauge", "Counters defined.").add(counters)

    return "\n".join(line for family in fam.values() for line in family.render()) + "\n"


def serve(dsn: str, host: str, port: int) -> None:
    """Serve /metrics over HTTP; each scrape reads the views afresh."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    body = collect(conn).encode()
            except psycopg.Error as exc:
                self.send_error(503, f"tally metrics: {exc}")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with socketserver.ThreadingTCPServer((host, port), Handler) as httpd:
        print(f"tally metrics on http://{host}:{port}/metrics")
        httpd.serve_forever()
