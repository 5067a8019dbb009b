-- tally.compact_loop: the compactor as a long-running job. Folds everything
-- pending (as tally.compact does) about every p_interval seconds for
-- p_seconds, then returns. pg_cron starts it every minute with p_seconds
-- just under 60 (tally.schedule_compactor), so the lag stays near
-- p_interval; pg_cron never runs a job twice at once.
CREATE OR REPLACE PROCEDURE tally.compact_loop(
    p_seconds double precision DEFAULT 55,
    p_interval double precision DEFAULT 1,
    p_max_deltas integer DEFAULT 100000,
    p_max_attempts integer DEFAULT 5
)
LANGUAGE plpython3u
AS $python$
"""Bodies of the PL/Python procedures tally.compact() and tally.compact_loop().

Runs inside the server: `plpy` is PL/Python's module, handed in by the
procedure. The work is done by compactor steps (tally._fold_step), each its
own transaction, committed before the next. A step that fails with a
transient error (deadlock, serialization failure, lock timeout, statement
timeout) is rolled back, leaving its deltas pending, and retried with
exponential backoff and jitter; a step that still fails after the last
attempt is recorded in tally.fold_runs and raised: its deltas stay pending
for the next run, never dropped.
"""

import random
import time
from datetime import UTC, datetime

# deadlock_detected, serialization_failure, lock_not_available, query_canceled
# (statement_timeout)
RETRYABLE = {"40P01", "40001", "55P03", "57014"}
BACKOFF_BASE = 0.05
BACKOFF_CAP = 2.0
# A backlog (a large backfill) in the inactive generation may hold live
# increments back at most this long before the generations rotate anyway.
MAX_GEN_AGE = "2 seconds"


def _check(plpy, name, value, minimum, hint):
    if value is None or value < minimum:
        plpy.error(f"tally.{name} must be at least {minimum}, got {value!r}", hint=hint, sqlstate="22023")


def _step(plpy, plans, max_deltas, max_attempts):
    """One compactor step, retried; returns its result row."""
    attempt = 0
    while True:
        attempt += 1
        started_at = datetime.now(UTC).isoformat()
        try:
            row = plpy.execute(plans["step"], [max_deltas, None, attempt, MAX_GEN_AGE])[0]
            plpy.commit()
            return row
        except plpy.SPIError as exc:
            sqlstate = getattr(exc, "sqlstate", None)
            plpy.rollback()
            retry = sqlstate in RETRYABLE and attempt < max_attempts
            plpy.execute(
                plans["record"],
                [started_at, attempt, "retried" if retry else "failed", f"{sqlstate}: {exc}"],
            )
            plpy.commit()
            if not retry:
                raise
            backoff = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** (attempt - 1)))
            plpy.execute(plans["sleep"], [backoff * (0.5 + random.random())])


def _plans(plpy):
    return {
        "step": plpy.prepare(
            "SELECT s.action, s.folded, s.flips FROM tally._fold_step($1, $2, $3, $4::pg_catalog.interval) AS s",
            ["integer", "bigint", "integer", "text"],
        ),
        "record": plpy.prepare(
            "SELECT tally._record_fold($1::pg_catalog.timestamptz, 0, $2, $3, $4)",
            ["text", "integer", "text", "text"],
        ),
        "sleep": plpy.prepare("SELECT pg_catalog.pg_sleep($1)", ["float8"]),
        "crash": plpy.prepare("SELECT tally._detect_crash_reset()"),
        "search_path": plpy.prepare("SELECT pg_catalog.current_setting('search_path') AS v"),
        "statement_timeout": plpy.prepare(
            "SELECT s.setting::pg_catalog.float8 AS ms FROM pg_catalog.pg_settings AS s"
            " WHERE s.name OPERATOR(pg_catalog.=) 'statement_timeout'"
        ),
        "set_search_path": plpy.prepare("SELECT pg_catalog.set_config('search_path', $1, false)", ["text"]),
    }


def _drain(plpy, plans, max_deltas, max_attempts):
    """Steps until each generation was seen empty while inactive since this
    call began: then every delta committed before the call is folded.

    The generation flips every time the inactive one is empty (so gen ==
    flips % 2): a 'flipped' step saw the generation it just activated empty.
    """
    plpy.execute(plans["crash"])  # record a crash reset, if the marker vanished
    plpy.commit()
    seen = set()
    folded = 0
    while len(seen) < 2:
        row = _step(plpy, plans, max_deltas, max_attempts)
        if row["action"] == "flipped":
            seen.add(row["flips"] % 2)
        elif row["action"] == "folded":
            folded += row["folded"]
    return folded


def compact(plpy, max_deltas, max_attempts):
    _check(plpy, "compact: p_max_deltas", max_deltas, 1, "the default is 100000")
    _check(plpy, "compact: p_max_attempts", max_attempts, 1, "the default is 5")
    plans = _plans(plpy)
    search_path = plpy.execute(plans["search_path"])[0]["v"]
    try:
        _drain(plpy, plans, max_deltas, max_attempts)
    finally:
        # pg_partman's create_partition_time() leaves search_path changed
        # for the session; put the caller's back.
        plpy.execute(plans["set_search_path"], [search_path])


def compact_loop(plpy, seconds, interval, max_deltas, max_attempts):
    _check(plpy, "compact_loop: p_seconds", seconds, 0, "e.g. 55 for a job pg_cron starts every minute")
    _check(plpy, "compact_loop: p_interval", interval, 0.01, "seconds between folds, e.g. 1")
    _check(plpy, "compact_loop: p_max_deltas", max_deltas, 1, "the default is 100000")
    _check(plpy, "compact_loop: p_max_attempts", max_attempts, 1, "the default is 5")
    plans = _plans(plpy)
    search_path = plpy.execute(plans["search_path"])[0]["v"]
    # A CALL is one statement: a statement_timeout (e.g. set on the role
    # pg_cron runs the job as) bounds the whole loop. End in time instead of
    # being cancelled mid-fold; the next run picks up.
    timeout_ms = plpy.execute(plans["statement_timeout"])[0]["ms"]
    if timeout_ms:
        seconds = min(seconds, max(0.0, timeout_ms / 1000.0 - 1.0))
    deadline = time.monotonic() + seconds
    try:
        while True:
            tick = time.monotonic()
            _drain(plpy, plans, max_deltas, max_attempts)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            pause = min(left, max(0.0, interval - (time.monotonic() - tick)))
            if pause > 0:
                plpy.execute(plans["sleep"], [pause])
    finally:
        plpy.execute(plans["set_search_path"], [search_path])
compact_loop(plpy, p_seconds, p_interval, p_max_deltas, p_max_attempts)
$python$;

COMMENT ON PROCEDURE tally.compact_loop (double precision, double precision, integer, integer) IS
'Run the compactor for p_seconds, folding everything pending every p_interval seconds.';
