"""The compactor: what the PL/Python procedures tally.compact() and
tally.compact_loop() run (`compact`, `compact_loop`).

Held once in the database, as the body of tally._compactor(); the
procedures load it from there (plpython/run_compactor.py). Runs inside the
server: `plpy` is PL/Python's module, handed in by the procedure.

The work is done by compactor steps (tally.compact_step), each its own
transaction, committed before the next. A step that fails is rolled
back by the step itself (its deltas stay pending) and recorded in
tally.fold_runs; a transient failure (deadlock, serialization failure, lock
timeout, statement timeout) comes back as 'retry' and is tried again after
an exponential backoff with jitter, up to p_max_attempts; a step that still
fails comes back as 'failed'. compact() then raises it; compact_loop() keeps
going: a compactor that runs as a service never stops on a failed step (the
failure shows in tally.health), only when its time is up or it is cancelled.

Parallel folds: with p_slices > 1 a call folds slice p_slice only
(tally._slice), beside calls folding the other slices; it ends, as a plain
call does, once it has seen each generation empty while inactive (its own
flips), i.e. every slice's deltas committed before the call are folded.
While only other slices' deltas are left the step reports 'waiting' and the
call pauses; when that lasts HELP_AFTER seconds (a slice's compactor is not
running) it folds chunks of any slice itself, alone, so nothing is left
behind by a missing compactor.

Plain compactors share the work by themselves: a call without a slice
(p_slices = 1) on a single node takes a seat (a session-level advisory lock
of its own, released when the call ends or its session dies) and, before
every step, counts the seats taken: alone, it folds every key, as before;
with N seated, it folds the slice of N that its seat's rank gives. So a
second `CALL tally.compact()`, pg_cron job or `tally compact --loop`
folds beside the first instead of waiting for it, and when one stops the
others' next steps cover its part. Calls that disagree on N for a moment
(one just came or went) may fold overlapping slices: the slices' bucket
locks make them wait for each other there, never fold a row twice.
"""

import contextlib
import random
import time

BACKOFF_BASE = 0.05
BACKOFF_CAP = 2.0
# A backlog (a large backfill) in the inactive generation may hold live
# increments back at most this long before the generations rotate anyway.
MAX_GEN_AGE = "2 seconds"
# query_canceled: a cancel (pg_cancel_backend(), or a client giving up on its
# call; tally.compact_step does not retry it), or a statement_timeout that
# persisted through every attempt, stops the loop instead of going on.
STOP = "57014"
# A slice compactor waiting for the other slices pauses this long between
# steps, and folds any slice itself once it has waited HELP_AFTER seconds.
WAIT = 0.05
HELP_AFTER = 5.0
# tally._fold_lock_key() (an internal function the invoker may not call; a
# test checks the two agree): on a distributed install each step holds it at
# session level (tally._fold_distributed checks).
FOLD_LOCK = 7361756479000001
# tally._slice_buckets(): how many slices a fold can be split into at most.
SLICE_BUCKETS = 64
# The seats of plain compactors: two-key advisory locks (SEAT_LOCK, seat),
# seat 0 .. SLICE_BUCKETS - 1; a key space apart from the fold lock's and
# the slices' bucket locks (736175647).
SEAT_LOCK = 736175648


class StepFailed(Exception):
    """A compactor step that failed after its last attempt (already recorded)."""

    def __init__(self, row):
        super().__init__(f"{row['sqlstate']}: {row['error']}")
        self.row = row


def _check(plpy, name, value, minimum, hint):
    if value is None or value < minimum:
        plpy.error(f"tally.{name} must be at least {minimum}, got {value!r}", hint=hint, sqlstate="22023")


def _check_slice(plpy, name, slice_, slices):
    # (the wording of tally._check_slice, which the procedure's invoker may not call)
    if slices is None or slices < 1 or slices > SLICE_BUCKETS or slice_ is None or slice_ < 0 or slice_ >= slices:
        plpy.error(
            f"tally.{name}: slice {'NULL' if slice_ is None else slice_} of {'NULL' if slices is None else slices}"
            " is not a slice",
            hint=f"p_slices: how many compactors fold at once (1, the default: every key; at most {SLICE_BUCKETS});"
            " p_slice: this one's, from 0 to p_slices - 1",
            sqlstate="22023",
        )


def _step(plpy, plans, max_deltas, max_attempts, slice_=0, slices=1):
    """One compactor step, retried while it reports a transient failure;
    returns its row, or raises StepFailed."""
    attempt = 0
    while True:
        attempt += 1
        args = [max_deltas, None, attempt, max_attempts, MAX_GEN_AGE, slice_, slices]
        if plans.get("distributed"):
            # The fold lock first, in a transaction of its own: the step's
            # REPEATABLE READ snapshot is then taken after the previous
            # step committed, and sees all it did.
            plpy.execute(plans["lock"], [FOLD_LOCK])
            plpy.commit()
            try:
                row = plpy.execute(plans["step"], args)[0]
                plpy.commit()
            finally:
                plpy.execute(plans["unlock"], [FOLD_LOCK])
        else:
            row = plpy.execute(plans["step"], args)[0]
            plpy.commit()
        if row["action"] in ("failed", "cancelled"):
            raise StepFailed(row)
        if row["action"] != "retry":
            # the backlog's trend for tally.health and the writers'
            # admission (at most every 10 s), in a transaction of its own
            plpy.execute(plans["sample"])
            plpy.commit()
            return row
        backoff = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** (attempt - 1)))
        plpy.execute(plans["sleep"], [backoff * (0.5 + random.random())])


def _plans(plpy):
    return {
        "step": plpy.prepare(
            "SELECT s.action, s.folded, s.flips, s.sqlstate, s.error"
            " FROM tally.compact_step($1, $2, $3, $4, $5::pg_catalog.interval, $6, $7) AS s",
            ["integer", "bigint", "integer", "integer", "text", "integer", "integer"],
        ),
        "gen": plpy.prepare(
            "SELECT w.flips, LEAST(w.emptied_at_flip[1], w.emptied_at_flip[2]) AS emptied FROM tally.write_gen AS w"
        ),
        "maintain": plpy.prepare("SELECT m.step, m.detail FROM tally.maintain() AS m"),
        "sample": plpy.prepare("SELECT tally.sample_backlog()"),
        "sleep": plpy.prepare("SELECT pg_catalog.pg_sleep($1)", ["float8"]),
        "search_path": plpy.prepare("SELECT pg_catalog.current_setting('search_path') AS v"),
        "statement_timeout": plpy.prepare(
            "SELECT s.setting::pg_catalog.float8 AS ms FROM pg_catalog.pg_settings AS s"
            " WHERE s.name OPERATOR(pg_catalog.=) 'statement_timeout'"
        ),
        "set_search_path": plpy.prepare("SELECT pg_catalog.set_config('search_path', $1, false)", ["text"]),
        "read_distributed": plpy.prepare("SELECT s.distributed FROM tally.settings AS s"),
        "lock": plpy.prepare("SELECT pg_catalog.pg_advisory_lock($1)", ["bigint"]),
        "unlock": plpy.prepare("SELECT pg_catalog.pg_advisory_unlock($1)", ["bigint"]),
        "seat": plpy.prepare(f"SELECT pg_catalog.pg_try_advisory_lock({SEAT_LOCK}, $1) AS ok", ["integer"]),
        "unseat": plpy.prepare(f"SELECT pg_catalog.pg_advisory_unlock({SEAT_LOCK}, $1)", ["integer"]),
        # the seats taken by sessions in a call now: a seat a session kept
        # past its call (its release failed in an aborted transaction) does
        # not count while that session is idle (another role's session
        # shows no state here, and counts)
        "seats": plpy.prepare(
            "SELECT l.objid::pg_catalog.int4 AS seat FROM pg_catalog.pg_locks AS l"
            " LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid OPERATOR(pg_catalog.=) l.pid"
            f" WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.classid OPERATOR(pg_catalog.=) {SEAT_LOCK}"
            " AND l.objsubid OPERATOR(pg_catalog.=) 2 AND l.granted"
            " AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database AS d"
            " WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())"
            " AND COALESCE(a.state, 'active') OPERATOR(pg_catalog.!~~) 'idle%'"
            " ORDER BY 1"
        ),
        "isolation": plpy.prepare("SELECT pg_catalog.current_setting('default_transaction_isolation') AS v"),
        "set_isolation": plpy.prepare(
            "SELECT pg_catalog.set_config('default_transaction_isolation', $1, false)", ["text"]
        ),
    }


class _Isolation:
    """On a distributed install every step runs REPEATABLE READ (on each
    worker, every statement of a fold step sees one snapshot; see
    tally._fold_distributed): the session's default isolation is set for
    the transactions that follow, and the caller's put back at the end."""

    def __init__(self, plpy, plans):
        self.plpy, self.plans = plpy, plans
        self.saved = None
        # (plans["distributed"]: whether this install is, read once per call)
        plans["distributed"] = bool(plpy.execute(plans["read_distributed"])[0]["distributed"])
        if plans["distributed"]:
            self.saved = plpy.execute(plans["isolation"])[0]["v"]
            plpy.execute(plans["set_isolation"], ["repeatable read"])
            plpy.commit()

    def restore(self):
        if self.saved is not None:
            self.plpy.execute(self.plans["set_isolation"], [self.saved])


class _Seat:
    """A plain compactor's seat (see the module's docstring): taken for the
    call, on a single node only (a distributed fold step folds every key on
    every worker at once; there a second compactor waits its turn)."""

    def __init__(self, plpy, plans, slices):
        self.plpy, self.plans, self.seat = plpy, plans, None
        if slices != 1 or plans.get("distributed"):
            return
        for seat in range(SLICE_BUCKETS):
            if plpy.execute(plans["seat"], [seat])[0]["ok"]:
                self.seat = seat
                return
        # every seat taken: fold plain, beside the others

    def share(self, slice_, slices):
        """(slice, slices) for the next step: the given ones, or this seat's
        rank among the seats taken now and their number."""
        if self.seat is None:
            return slice_, slices
        seats = [r["seat"] for r in self.plpy.execute(self.plans["seats"])]
        if self.seat not in seats or len(seats) < 2:
            return 0, 1
        return seats.index(self.seat), len(seats)

    def release(self):
        if self.seat is not None:
            seat, self.seat = self.seat, None
            # (in an aborted transaction it cannot: the seat goes with the
            # session, and counts only while that session is in a call)
            with contextlib.suppress(self.plpy.SPIError):
                self.plpy.execute(self.plans["unseat"], [seat])


def _drain(plpy, plans, max_deltas, max_attempts, slice_=0, slices=1, deadline=None, seat=None):
    """Steps until each generation was seen empty while inactive since this
    call began: then every delta committed before the call is folded.

    The generation flips every time the inactive one is empty: such a flip
    (not a rotation, which flips past a backlog) records its number for the
    generation it found empty (tally.write_gen.emptied_at_flip). Once both
    generations' numbers are past the flip count at the start (plus one, for
    a flip that was under way as the call began), every delta
    written before is folded, whichever compactor did the flips (several may
    fold at once, and flip in turns).

    With slices > 1 the steps fold slice `slice_` only; a step reports
    'waiting' while only other slices' deltas are left (pause, then try
    again; after HELP_AFTER seconds of it, fold any slice's deltas, alone).
    With a seat (a plain call), each step's slice and slices are the seat's
    share of the compactors seated at that moment (`_Seat.share`).
    Returns early when `deadline` (monotonic) passes.
    """
    # A flip numbered start + 1 may have begun (and looked) before this call
    # did; every later flip looked after it, under the fold lock.
    start = plpy.execute(plans["gen"])[0]["flips"] + 1
    folded = 0
    waiting_since = None
    while deadline is None or time.monotonic() < deadline:
        helping = waiting_since is not None and time.monotonic() - waiting_since >= HELP_AFTER
        if helping:
            # the other slices' compactors are gone or stuck: fold any key,
            # alone (under the fold lock exclusive), until nothing is left
            row = _step(plpy, plans, max_deltas, max_attempts)
        else:
            share = seat.share(slice_, slices) if seat is not None else (slice_, slices)
            row = _step(plpy, plans, max_deltas, max_attempts, *share)
        if row["action"] == "waiting":
            waiting_since = waiting_since or time.monotonic()
            if plpy.execute(plans["gen"])[0]["emptied"] > start:
                break  # the other slices' compactors drained both generations
            plpy.execute(plans["sleep"], [WAIT])
            continue
        if not helping:
            waiting_since = None
        if row["action"] == "folded":
            folded += row["folded"]
            if not plans.get("distributed"):
                continue  # (a single node's fold step flips nothing)
        # (a distributed step that folded also ends with its snapshot drained)
        if plpy.execute(plans["gen"])[0]["emptied"] > start:
            break
    return folded


def _raise(plpy, failed):
    row = failed.row
    plpy.error(
        f"tally.compact: a compactor step {'was cancelled' if row['action'] == 'cancelled' else 'failed'}:"
        f" {row['error']}",
        detail="the step was rolled back (its deltas stay pending) and recorded in tally.fold_runs",
        hint="see tally.compactor_runs and tally.health",
        sqlstate=row["sqlstate"],
    )


def compact(plpy, max_deltas, max_attempts, slice_=0, slices=1):
    _check(plpy, "compact: p_max_deltas", max_deltas, 1, "the default is 1000000")
    _check(plpy, "compact: p_max_attempts", max_attempts, 1, "the default is 5")
    _check_slice(plpy, "compact", slice_, slices)
    plans = _plans(plpy)
    search_path = plpy.execute(plans["search_path"])[0]["v"]
    isolation = _Isolation(plpy, plans)
    seat = _Seat(plpy, plans, slices)
    try:
        _drain(plpy, plans, max_deltas, max_attempts, slice_, slices, seat=seat)
    except StepFailed as failed:
        _raise(plpy, failed)
    finally:
        seat.release()
        # pg_partman's create_partition_time() leaves search_path changed
        # for the session; put the caller's back.
        plpy.execute(plans["set_search_path"], [search_path])
        isolation.restore()


def compact_loop(plpy, seconds, interval, max_deltas, max_attempts, slice_=0, slices=1):
    _check(plpy, "compact_loop: p_seconds", seconds, 0, "e.g. 55 for a job pg_cron starts every minute")
    _check(plpy, "compact_loop: p_interval", interval, 0.01, "seconds between folds, e.g. 1")
    _check(plpy, "compact_loop: p_max_deltas", max_deltas, 1, "the default is 1000000")
    _check(plpy, "compact_loop: p_max_attempts", max_attempts, 1, "the default is 5")
    _check_slice(plpy, "compact_loop", slice_, slices)
    plans = _plans(plpy)
    search_path = plpy.execute(plans["search_path"])[0]["v"]
    # A CALL is one statement: a statement_timeout (e.g. set on the role
    # pg_cron runs the job as) bounds the whole loop. End in time instead of
    # being cancelled mid-fold; the next run picks up.
    timeout_ms = plpy.execute(plans["statement_timeout"])[0]["ms"]
    if timeout_ms:
        seconds = min(seconds, max(0.0, timeout_ms / 1000.0 - 1.0))
    deadline = time.monotonic() + seconds
    isolation = _Isolation(plpy, plans)
    seat = _Seat(plpy, plans, slices)
    shared = slices > 1 or seat.seat is not None
    try:
        # Maintenance first (today's event-id partition, rollup partitions
        # ahead), even when no maintenance job is scheduled. It never
        # raises: its failures are recorded and the loop folds anyway.
        plpy.execute(plans["maintain"])
        plpy.commit()
        while True:
            tick = time.monotonic()
            try:
                _drain(plpy, plans, max_deltas, max_attempts, slice_, slices, deadline if shared else None, seat)
            except StepFailed as failed:
                if failed.row["sqlstate"] == STOP:
                    _raise(plpy, failed)
                # recorded by the step; the rest keeps folding next round
            left = deadline - time.monotonic()
            if left <= 0:
                return
            pause = min(left, max(0.0, interval - (time.monotonic() - tick)))
            if pause > 0:
                plpy.execute(plans["sleep"], [pause])
    finally:
        seat.release()
        plpy.execute(plans["set_search_path"], [search_path])
        isolation.restore()
