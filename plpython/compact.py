"""Body of the PL/Python procedure tally.compact().

Runs inside the server: `plpy` is PL/Python's module, handed in by the
procedure. Each fold is one transaction (tally._fold); between folds this
loop commits. Transient failures roll the fold back, leaving its deltas
pending, and are retried with exponential backoff and jitter.
"""

import random

# deadlock_detected, serialization_failure, lock_not_available, query_canceled
# (statement_timeout), and the "could not obtain lock" family.
RETRYABLE = {"40P01", "40001", "55P03", "57014"}


def _record(plpy, started_at, deltas, attempts, outcome, error):
    plan = plpy.prepare(
        "SELECT tally._record_fold($1::pg_catalog.timestamptz, $2, $3, $4, $5)",
        ["text", "bigint", "integer", "text", "text"],
    )
    plpy.execute(plan, [started_at, deltas, attempts, outcome, error])


def _now(plpy):
    return plpy.execute("SELECT pg_catalog.clock_timestamp()::pg_catalog.text AS t")[0]["t"]


def _fold_once(plpy, fold_plan, max_deltas, max_attempts):
    """One fold, retried; returns the number of deltas folded."""
    attempt = 0
    while True:
        attempt += 1
        started_at = _now(plpy)
        try:
            folded = plpy.execute(fold_plan, [max_deltas])[0]["folded"]
            if folded:
                _record(plpy, started_at, folded, attempt, "ok", None)
            plpy.commit()
            return folded
        except plpy.SPIError as exc:
            sqlstate = getattr(exc, "sqlstate", None)
            plpy.rollback()
            error = f"{sqlstate}: {exc}"
            if sqlstate not in RETRYABLE or attempt >= max_attempts:
                _record(plpy, started_at, 0, attempt, "failed", error)
                plpy.commit()
                raise
            backoff = min(2.0, 0.05 * (2 ** (attempt - 1)))
            plpy.execute(f"SELECT pg_catalog.pg_sleep({backoff * (0.5 + random.random()):.3f})")


def compact(plpy, max_deltas, max_attempts):
    if max_deltas is None or max_deltas < 1:
        plpy.error(
            f"tally.compact: p_max_deltas {max_deltas!r} must be a positive number of deltas",
            hint="the default is 100000",
            sqlstate="22023",
        )
    if max_attempts is None or max_attempts < 1:
        plpy.error(
            f"tally.compact: p_max_attempts {max_attempts!r} must be at least 1",
            hint="the default is 5",
            sqlstate="22023",
        )
    fold_plan = plpy.prepare("SELECT tally._fold($1) AS folded", ["integer"])
    # Fold what is pending now; stop once that much has been folded, so a
    # call ends even while writers keep writing.
    pending = plpy.execute("SELECT tally._pending() AS n")[0]["n"]
    plpy.commit()
    done = 0
    while True:
        folded = _fold_once(plpy, fold_plan, max_deltas, max_attempts)
        done += folded
        if folded < max_deltas or done >= pending:
            break
