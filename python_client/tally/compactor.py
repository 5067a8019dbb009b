"""`tally compact --loop`: the compactor as a long-running service, for
databases without pg_cron.

Every `interval` seconds it runs `CALL tally.compact(max_deltas)`, and
`SELECT * FROM tally.maintain()` once at start and then every
`maintain_every` seconds (rollup partitions ahead and past retention, the
event-id day partitions, pruning of tally.fold_runs). It logs to stderr
with UTC timestamps: start, connections, each maintenance row, errors with
their SQLSTATE, reconnects, stop.

Errors:

- transient (anything not listed below: a lost connection, a server
  restart, a terminated backend, a CALL that failed after tally.compact's
  own retries, too many connections, ...): logged, then the service backs
  off (exponential from 0.5 s, capped at 30 s, with jitter), reconnects if
  the connection is gone, and goes on. A database that cannot be reached is
  retried for as long as it takes (it may be starting).
- not transient (SQLSTATE classes 28 authorization, 3D no such database,
  3F no such schema, 42 undefined object or permission denied 42501, and
  22023 a bad argument): they do not fix themselves, so after
  `FATAL_ATTEMPTS` (5) in a row, backing off between them (about 8 s in
  all), the service exits 1 with the error and its hint.
- a failing maintenance never stops folding: it is logged and tried again
  after min(maintain_every, 60) seconds.

Parallel folds (`--workers N`, N > 1): N such loops run at once, in threads
of one process, each on its own connection folding one key slice
(`CALL tally.compact(max_deltas, 5, k, N)`, k = 0 .. N-1); the first also
runs the maintenance. Each handles its errors as above; the process exits
when all have stopped, with the worst exit code.

SIGTERM and SIGINT stop it: a call in flight is allowed to finish for
`stop_timeout` seconds; after that it is cancelled (a cancel request: the
server rolls back the fold step in flight, and tally.compact_step does not
retry a cancel) and the connection is shut down. It then exits 0.

Its connections leave no session state behind and prepare nothing on the
server (tally.connect), so it runs the same through a pooler in
transaction mode: the application name is a connection parameter, and
nothing else is SET. (A statement_timeout of the login bounds each CALL:
tally.compact_step retries a step it cancels, once per CALL.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import socket
import threading
import time

import psycopg
from psycopg.conninfo import conninfo_to_dict

from tally.connect import connect
from tally.metrics import describe, dsn_database

log = logging.getLogger("tally.compactor")

BACKOFF_BASE = 0.5  # seconds, doubled per consecutive failure
BACKOFF_CAP = 30.0
FATAL_ATTEMPTS = 5
MAINTAIN_RETRY = 60.0  # seconds before a failed maintenance is tried again (at most)
# SQLSTATE classes and codes that retrying cannot fix.
FATAL_CLASSES = ("28", "3D", "3F", "42")
FATAL_CODES = {"22023"}
# For TCP connections whose DSN sets none: notice a dead peer in ~1 min.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}


def is_fatal(exc: BaseException) -> bool:
    """An error that retrying will not fix (see the module docstring)."""
    sqlstate = getattr(exc, "sqlstate", None) or ""
    return sqlstate in FATAL_CODES or sqlstate[:2] in FATAL_CLASSES


def backoff(failures: int) -> float:
    """Seconds to wait after the n-th consecutive failure: exponential,
    capped, with jitter (between half and all of the step)."""
    step = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (max(failures, 1) - 1))
    return step * (0.5 + random.random() / 2)


class CompactorService:
    """The compactor loop. `run()` returns the exit code."""

    def __init__(
        self,
        dsn: str,
        *,
        interval: float = 1.0,
        max_deltas: int = 1_000_000,
        maintain_every: float = 3600.0,
        duration: float = 0.0,
        stop_timeout: float = 10.0,
        slice_: int = 0,
        slices: int = 1,
        maintain: bool = True,
    ) -> None:
        self.dsn = dsn
        self.slice = slice_
        self.slices = slices
        self.maintain = maintain
        self.name = "tally compactor" if slices == 1 else f"tally compactor {slice_}/{slices}"
        self.interval = interval
        self.max_deltas = max_deltas
        self.maintain_every = maintain_every
        self.duration = duration
        self.stop_timeout = stop_timeout
        self.conn: psycopg.Connection | None = None
        self.stopping: str | None = None
        self.stop_requested_at = 0.0
        self.in_call = False
        self.abandoned = False

    # -- signals and the call in flight ------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.stopping is None:
            self.stopping = signal.Signals(signum).name
            self.stop_requested_at = time.monotonic()

    def _watchdog(self) -> None:
        """Abandon a call still running `stop_timeout` seconds after a stop
        signal: shut the socket down (the main thread's call then fails,
        the server rolls the step back)."""
        while True:
            time.sleep(0.1)
            if not (self.stopping and self.in_call and not self.abandoned):
                continue
            if time.monotonic() - self.stop_requested_at < self.stop_timeout:
                continue
            conn = self.conn
            if conn is None or conn.closed:
                continue
            self.abandoned = True
            log.warning(
                "the call in flight did not finish within %.0f s of %s: cancelling it and closing the connection"
                " (the server rolls back the fold step in flight)",
                self.stop_timeout,
                self.stopping,
            )
            try:
                conn.cancel_safe(timeout=5)
            except (OSError, psycopg.Error) as exc:
                log.warning("could not cancel the call: %s", exc)
            try:
                with socket.socket(fileno=os.dup(conn.fileno())) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except (OSError, psycopg.Error) as exc:
                log.warning("could not close the connection: %s", exc)

    def _sleep(self, seconds: float) -> None:
        """Sleep, waking at once on a stop signal."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.1, left))

    # -- database ----------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        params = conninfo_to_dict(self.dsn)
        extra: dict[str, object] = {}
        if not str(params.get("host", "/")).startswith("/"):  # TCP
            extra = {k: v for k, v in KEEPALIVES.items() if k not in params}
        return connect(self.dsn, application_name=self.name, **extra)

    def _call(self, sql: str, params: tuple = ()) -> list[tuple]:
        assert self.conn is not None
        self.in_call = True
        try:
            cur = self.conn.execute(sql, params)
            return cur.fetchall() if cur.description else []
        finally:
            self.in_call = False

    def _close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
            self.conn = None

    def _maintain(self) -> list[str]:
        """Run tally.maintain(); return what failed (it never raises for a
        failed part: it reports it as a row 'failed' and runs the others)."""
        started = time.monotonic()
        rows = self._call("SELECT * FROM tally.maintain()")
        failed = [" ".join(str(v) for v in row[1:]) for row in rows if row[0] == "failed"]
        for row in rows:
            if row[0] != "failed":
                log.info("maintenance: %s: %s", row[0], " ".join(str(v) for v in row[1:]))
        if not failed:
            log.info(
                "maintenance done in %.2f s (%d steps); next in %g s",
                time.monotonic() - started,
                len(rows),
                self.maintain_every,
            )
        return failed

    # -- the loop ----------------------------------------------------------

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        return self.serve()

    def serve(self) -> int:
        """The loop itself (signals are the caller's: run() or run_workers())."""
        threading.Thread(target=self._watchdog, name=f"{self.name} watchdog", daemon=True).start()
        log.info(
            "starting%s: database %s, a fold every %g s (at most %d deltas per step), maintenance %s",
            "" if self.slices == 1 else f" slice {self.slice} of {self.slices}",
            dsn_database(self.dsn),
            self.interval,
            self.max_deltas,
            f"every {self.maintain_every:g} s" if self.maintain else "by slice 0",
        )
        deadline = time.monotonic() + self.duration if self.duration else None
        next_maintain = time.monotonic()  # once at start
        failures = 0  # consecutive, of any kind
        fatal = 0  # consecutive, not transient
        down_since: float | None = None
        ever_connected = False
        code = 0
        while not self.stopping:
            if deadline is not None and time.monotonic() >= deadline:
                break
            what = "cannot connect"
            try:
                if self.conn is None:
                    self.conn = self._connect()
                    info = self.conn.info
                    if down_since is None:
                        log.info(
                            "connected to database %s as %s (backend pid %d, server %d)",
                            info.dbname,
                            info.user,
                            info.backend_pid,
                            info.server_version,
                        )
                    else:
                        log.info(
                            "%s to database %s after %.1f s and %d failure%s (backend pid %d)",
                            "reconnected" if ever_connected else "connected",
                            info.dbname,
                            time.monotonic() - down_since,
                            failures,
                            "" if failures == 1 else "s",
                            info.backend_pid,
                        )
                    ever_connected = True
                if self.maintain and time.monotonic() >= next_maintain:
                    what = "maintenance failed"
                    try:
                        failed = self._maintain()
                        if failed:
                            retry = min(self.maintain_every, MAINTAIN_RETRY)
                            log.error(
                                "maintenance failed: %s; folding goes on, next try in %g s", "; ".join(failed), retry
                            )
                            next_maintain = time.monotonic() + retry
                        else:
                            next_maintain = time.monotonic() + self.maintain_every
                    except psycopg.Error as exc:
                        if self.conn.broken or self.conn.closed or self.stopping:
                            raise
                        retry = min(self.maintain_every, MAINTAIN_RETRY)
                        log.error("maintenance failed: %s; folding goes on, next try in %g s", _error_line(exc), retry)
                        next_maintain = time.monotonic() + retry
                if self.stopping:
                    break
                what = "compact failed"
                started = time.monotonic()
                if self.slices == 1:
                    self._call("CALL tally.compact(%s::integer)", (self.max_deltas,))
                else:
                    self._call(
                        "CALL tally.compact(%s::integer, 5, %s::integer, %s::integer)",
                        (self.max_deltas, self.slice, self.slices),
                    )
                log.debug("compact: %.3f s", time.monotonic() - started)
                failures = fatal = 0
                down_since = None
            except psycopg.Error as exc:
                if self.stopping:
                    self._close()
                    break
                failures += 1
                down_since = down_since if down_since is not None else time.monotonic()
                lost = self.conn is None or self.conn.broken or self.conn.closed
                if lost:
                    self._close()
                if is_fatal(exc):
                    fatal += 1
                    if fatal >= FATAL_ATTEMPTS:
                        log.critical(
                            "%s: %s; not a transient error, giving up after %d attempts", what, _error_line(exc), fatal
                        )
                        code = 1
                        break
                    wait = backoff(failures)
                    log.error(
                        "%s: %s; not a transient error (attempt %d of %d), retrying in %.1f s",
                        what,
                        _error_line(exc),
                        fatal,
                        FATAL_ATTEMPTS,
                        wait,
                    )
                else:
                    fatal = 0
                    wait = backoff(failures)
                    log.warning(
                        "%s: %s%s; retrying in %.1f s (failure %d in a row)",
                        what,
                        _error_line(exc),
                        "; connection lost, reconnecting" if lost and what != "cannot connect" else "",
                        wait,
                        failures,
                    )
                self._sleep(wait)
                continue
            if deadline is not None and time.monotonic() >= deadline:
                break
            self._sleep(self.interval)
        self._close()
        if self.stopping:
            log.info("stopped on %s", self.stopping)
        elif code == 0:
            log.info("stopped: --duration of %g s reached", self.duration)
        return code


def run_workers(dsn: str, workers: int, **options: float) -> int:
    """`workers` compactor loops at once, one key slice each (threads, each
    with its own connection); SIGTERM/SIGINT stop them all. Returns the
    worst exit code."""
    if workers == 1:
        return CompactorService(dsn, **options).run()
    services = [CompactorService(dsn, slice_=k, slices=workers, maintain=k == 0, **options) for k in range(workers)]

    def on_signal(signum: int, frame: object) -> None:
        for service in services:
            service._on_signal(signum, frame)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    codes = [0] * workers

    def one(k: int) -> None:
        codes[k] = services[k].serve()

    threads = [threading.Thread(target=one, args=(k,), name=services[k].name) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(timeout=0.2)  # wakes for signals
    return max(codes)


# What to do about the errors retrying cannot fix, when the server gives no HINT.
HINTS = {
    "3F000": "tally is not installed in this database: `tally --dsn ... migrate` installs it",
    "42883": "tally is not installed (or not at head) in this database: `tally --dsn ... migrate`",
    "42501": "the compactor's login needs tally_admin: GRANT tally_admin TO <login>",
}


def _error_line(exc: BaseException) -> str:
    """describe() plus the server's HINT (or ours), when there is one."""
    text = describe(exc)
    diag = getattr(exc, "diag", None)
    hint = (diag.message_hint if diag is not None else None) or HINTS.get(getattr(exc, "sqlstate", None) or "")
    return f"{text} (HINT: {hint})" if hint else text
