"""Faults of the Citus cluster itself, with real processes and real kills:
a worker's postmaster killed (-9) mid-load, the coordinator killed (-9)
inside a fold's two-phase commit, a worker added and the shards rebalanced
onto it while writers and a compactor run, one shard moved while writers
on every node write into it. The test keeps the ground truth
of what was acknowledged; after each fault every value is compared with it.

The suite shares the cluster: every node a test kills is started again, and
the worker a test adds is drained and removed (its node stopped and deleted
when the test made it), so the other tests find the two workers they expect."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import workers
from conftest import move_shard
from load import keep_everything
from truth import Truth, assert_matches

REPO = Path(__file__).resolve().parents[2]
CITUS = REPO / "scripts" / "citus.sh"
DAYS_BACK = 2
KEYS = [str(k) for k in range(200)] + [workers.HOT_KEY]


# -- the cluster ---------------------------------------------------------------


def base_port(dsn: str) -> int:
    return int(psycopg.conninfo.conninfo_to_dict(dsn)["port"])


def citus(dsn: str, *args: str) -> str:
    """scripts/citus.sh for this cluster. The postmaster a start leaves
    behind writes to its own log (pg_ctl -l), never to a pipe of ours."""
    with tempfile.TemporaryFile("w+") as out:
        done = subprocess.run(
            [str(CITUS), *args],
            env={**os.environ, "CITUS_PORT": str(base_port(dsn))},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=180,
        )
        out.seek(0)
        text = out.read()
    assert done.returncode == 0, f"citus.sh {' '.join(args)} failed:\n{text}"
    return text.strip()


def node_dsn(dsn: str, node: int) -> str:
    """Node `node`'s DSN (0: the coordinator) for the database of `dsn`."""
    db = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    return citus(dsn, "node-dsn", str(node), db)


def gone(pid: int) -> bool:
    """Exited and reaped: pg_ctl takes a zombie postmaster for a running one."""
    return not Path(f"/proc/{pid}").exists()


def kill_node(dsn: str, node: int) -> None:
    """SIGKILL a node's postmaster and every process it started, at once
    (a crash, not a shutdown): on restart the node runs crash recovery,
    which empties its UNLOGGED tables."""
    pid = int(citus(dsn, "pid", str(node)))
    children = subprocess.run(["ps", "--ppid", str(pid), "-o", "pid="], capture_output=True, text=True).stdout
    pids = [pid, *(int(p) for p in children.split())]
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while not all(gone(p) for p in pids):
        assert time.monotonic() < deadline, "the killed node's processes did not go away"
        time.sleep(0.05)


def key_ports(conn: psycopg.Connection, keys: list[str]) -> dict[str, int]:
    """The worker port holding each key's shards."""
    rows = conn.execute(
        """
        SELECT k.key, s.nodeport
        FROM unnest(%s::text[]) AS k (key)
        JOIN citus_shards AS s
          ON s.shardid = get_shard_id_for_distribution_column('tally.delta', k.key)
         AND s.table_name = 'tally.delta'::regclass
        """,
        (keys,),
    ).fetchall()
    return dict(rows)


def crash_status(conn: psycopg.Connection) -> str:
    return conn.execute("""SELECT status FROM tally.health WHERE "check" = 'crash'""").fetchone()[0]


def prepared_on(dsn: str, node: int) -> int:
    """Prepared transactions of this database on node `node`."""
    with psycopg.connect(node_dsn(dsn, node), autocommit=True) as c:
        return c.execute("SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()").fetchone()[0]


def subset(truth: Truth, keep) -> Truth:
    """The part of `truth` whose (counter, key) `keep` accepts."""
    part = Truth()
    part.totals.update({k: v for k, v in truth.totals.items() if keep(*k)})
    for (counter, key, g), series in truth.buckets.items():
        if keep(counter, key):
            part.buckets[(counter, key, g)].update(series)
    return part


def window() -> tuple[datetime, datetime]:
    return datetime.now(UTC) - timedelta(days=DAYS_BACK + 40), datetime.now(UTC) + timedelta(days=1)


def compact(conn: psycopg.Connection) -> None:
    conn.execute("CALL tally.compact()")
    pending = conn.execute("SELECT tally._pending()").fetchone()[0]
    assert pending == 0, f"{pending} deltas still pending after a compact"


# -- processes the tests start -------------------------------------------------


def outage(exc: BaseException, down_port: int | None) -> bool:
    """An error a call may meet while worker `down_port` is down or starting
    up: a failed connection (class 08, the server going down or not up yet),
    or Citus's error about that worker's connection. Also Citus's failure to
    roll a subtransaction back over a connection that broke inside it (a
    compactor step's, tally.compact_step, at the moment of the crash), or to
    commit a step over it: the whole call fails; the two-phase commit
    decides what the step did. Anything else (a deadlock, a
    serialization failure, a wrong result) is not."""
    if down_port is None or not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None or state.startswith("08") or state in workers.KILLED:
        return True
    if state == "XX000" and str(exc).startswith("RollbackAndReleaseCurrentSubTransaction: unexpected state"):
        return True
    # the step's commit (two-phase, from PL/Python's plpy.commit) over the
    # connection to the worker that just died: libpq's own words
    if state == "XX000" and "server closed the connection unexpectedly" in str(exc):
        return True
    return f":{down_port}" in str(exc)


def _one_call(rnd: random.Random, seed: int, n: int, fast: str, durable: str):
    """One call: a fast or a durable counter, one increment (70%) or a batch
    of 2-20, positive deltas (so a lost fast increment can only make a value
    smaller), timestamps over the last DAYS_BACK days. A durable call carries
    event ids: whether a call that failed committed anyway is read back from
    tally.event_ids (its claim and its deltas commit together)."""
    is_durable = rnd.random() < 0.5
    counter = durable if is_durable else fast
    size = 1 if rnd.random() < 0.7 else rnd.randint(2, 20)
    now = datetime.now(UTC)
    items = [
        (
            counter,
            rnd.choice(KEYS),
            rnd.choice([1, 1, 2, 5]),
            now - timedelta(seconds=rnd.uniform(0, DAYS_BACK * 86400)),
        )
        for _ in range(size)
    ]
    ids = [f"w{seed}-{n}-{i}" for i in range(size)] if is_durable else None
    return items, ids


def _write(conn: psycopg.Connection, items: list, ids: list | None) -> None:
    """One call of load_writer's: a single increment or a batch."""
    if len(items) == 1:
        counter, key, delta, at = items[0]
        (ok,) = conn.execute(
            "SELECT tally.increment_counter(%s::text, %s::text, %s::bigint, %s::timestamptz, %s::text)",
            (counter, key, delta, at, ids[0] if ids else None),
        ).fetchone()
        assert ok is True
    else:
        (applied,) = conn.execute(
            "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[], %s::text[])",
            (*(list(col) for col in zip(*items, strict=True)), ids),
        ).fetchone()
        assert applied == len(items), (applied, len(items))


def load_writer(
    dsn: str, seed: int, fast: str, durable: str, stop, calls, out, down_port: int | None, blocks: bool = False
) -> None:
    """Calls until `stop`, each in a transaction block of its own with
    `blocks` (Citus then runs a call on the node it is sent to, rather than
    delegating it to its key's node). A call that returned is acknowledged and enters
    the truth; one that failed with an outage error (worker `down_port`)
    enters nothing, is kept as unknown, and the writer goes on (on a new
    connection when its own was lost). Any other error stops it."""
    rnd = random.Random(seed)
    truth = Truth()
    unknown: list[tuple[list, list | None]] = []
    errors: list[str] = []
    failed = 0
    last_ok = 0.0
    deadline = time.monotonic() + 600
    conn = workers.connect_retry(dsn, deadline)
    try:
        n = 0
        while not stop.is_set():
            n += 1
            items, ids = _one_call(rnd, seed, n, fast, durable)
            try:
                block = conn.transaction() if blocks else contextlib.nullcontext()
                with block:
                    _write(conn, items, ids)
            except psycopg.Error as exc:
                if not outage(exc, down_port):
                    raise workers.unexpected(exc) from exc
                failed += 1
                unknown.append((items, ids))
                if conn.closed or conn.broken:
                    conn.close()
                    conn = workers.connect_retry(dsn, deadline)
                time.sleep(0.02)
                continue
            for inc in items:
                truth.add(*inc)
            last_ok = time.time()
            with calls.get_lock():
                calls.value += 1
    except Exception:
        errors.append(traceback.format_exc())
    finally:
        conn.close()
    out.put(("writer", seed, failed, errors, truth.to_plain(), unknown, last_ok))


def load_compactor(dsn: str, stop, out, down_port: int | None) -> None:
    """CALL tally.compact() in a loop until `stop`; a call failing with an
    outage error (worker `down_port`) is counted and the loop goes on."""
    errors: list[str] = []
    ok = failed = 0
    deadline = time.monotonic() + 600
    conn = workers.connect_retry(dsn, deadline)
    try:
        while not stop.is_set():
            try:
                conn.execute("CALL tally.compact()")
                ok += 1
            except psycopg.Error as exc:
                if not outage(exc, down_port):
                    raise workers.unexpected(exc) from exc
                failed += 1
                if conn.closed or conn.broken:
                    conn.close()
                    conn = workers.connect_retry(dsn, deadline)
            time.sleep(0.05)
    except Exception:
        errors.append(traceback.format_exc())
    finally:
        conn.close()
    out.put(("compactor", 0, failed, errors, ok, None, None))


class Load:
    """Writers and one compactor in processes of their own, until stop()."""

    def __init__(
        self,
        dsn: str,
        fast: str,
        durable: str,
        writers: int,
        down_port: int | None = None,
        writer_dsns: list[str] | None = None,
        blocks: int = 0,
    ) -> None:
        """Writer i connects to writer_dsns[i % len] (default: dsn, the
        coordinator), the first `blocks` of them writing in transaction
        blocks; the compactor connects to dsn."""
        ctx = mp.get_context("spawn")
        spread = writer_dsns or [dsn]
        self.out = ctx.Queue()
        self.stop_event = ctx.Event()
        self.calls = ctx.Value("q", 0)
        self.writers = writers
        self.procs = [ctx.Process(target=load_compactor, args=(dsn, self.stop_event, self.out, down_port))]
        self.procs += [
            ctx.Process(
                target=load_writer,
                args=(
                    spread[i % len(spread)],
                    1000 + i,
                    fast,
                    durable,
                    self.stop_event,
                    self.calls,
                    self.out,
                    down_port,
                    i < blocks,
                ),
            )
            for i in range(writers)
        ]
        for p in self.procs:
            p.start()

    def wait_calls(self, more: int, timeout: float = 60.0) -> None:
        """Until the writers have acknowledged `more` calls from now on."""
        target = self.calls.value + more
        deadline = time.monotonic() + timeout
        while self.calls.value < target:
            assert time.monotonic() < deadline, f"the writers acknowledged {self.calls.value} calls, not {target}"
            time.sleep(0.05)

    def stop(self):
        """Stop everything; returns (acknowledged truth, the unknown calls,
        failed calls, the latest acknowledged call's time, compactor calls ok,
        compactor calls failed)."""
        self.stop_event.set()
        truth = Truth()
        unknown: list = []
        failed = 0
        last_ok = 0.0
        compactor = None
        for _ in range(self.writers + 1):
            kind, ident, n_failed, errors, plain, lost, last = self.out.get(timeout=180)
            assert not errors, f"{kind} {ident} saw errors:\n" + "\n".join(errors)
            if kind == "compactor":
                compactor = (plain, n_failed)
                continue
            truth.merge(Truth.from_plain(plain))
            unknown += lost
            failed += n_failed
            last_ok = max(last_ok, last)
        for p in self.procs:
            p.join(timeout=60)
        return truth, unknown, failed, last_ok, compactor


def make_counters(conn: psycopg.Connection, name: str) -> tuple[str, str]:
    fast, durable = f"{name}_fast", f"{name}_durable"
    conn.execute("SELECT tally.create_counter(%s)", (fast,))
    conn.execute("SELECT tally.create_counter(%s, p_durable => true)", (durable,))
    keep_everything(conn, [fast, durable])
    return fast, durable


# -- 1. a worker killed mid-load -------------------------------------------------


def test_a_worker_killed_mid_load_loses_only_reported_fast_increments(
    citus_dsn: str, cconn: psycopg.Connection, name: str
) -> None:
    fast, durable = make_counters(cconn, name)
    cconn.execute("SELECT tally.acknowledge_crash()")  # earlier tests' resets, if any: reviewed
    assert crash_status(cconn) == "ok"
    victim = base_port(citus_dsn) + 1  # worker 1
    ports = key_ports(cconn, KEYS)
    assert victim in ports.values() and len(set(ports.values())) == 2, ports  # keys on both workers
    other = next(p for p in ports.values() if p != victim)
    resets_before, runs_before = cconn.execute(
        "SELECT (SELECT coalesce(max(id), 0) FROM tally.crash_resets),"
        " (SELECT coalesce(max(id), 0) FROM tally.fold_runs)"
    ).fetchone()

    load = Load(citus_dsn, fast, durable, writers=4, down_port=victim)
    try:
        load.wait_calls(300)
        kill_node(citus_dsn, 1)
        time.sleep(3)  # writers and the compactor meet the dead worker
        citus(citus_dsn, "start-node", "1")
        restarted = time.time()
        load.wait_calls(300)  # and go on once it is back
    finally:
        citus(citus_dsn, "start-node", "1")  # (idempotent)
        truth, unknown, failed, last_ok, (compactions, compactions_failed) = load.stop()

    # A new session: the coordinator's connections to the worker that was
    # killed are gone.
    with psycopg.connect(citus_dsn, autocommit=True) as c:
        assert failed > 0, "no call met the dead worker"
        assert last_ok > restarted, "no call was acknowledged after the worker came back"
        assert compactions > 0 and compactions_failed > 0, (compactions, compactions_failed)
        # The compactor's steps that met the dead worker are on record (the
        # compactor failed its steps, it did not stop).
        (recorded,) = c.execute(
            "SELECT count(*) FROM tally.fold_runs WHERE id > %s AND outcome = 'failed' AND error LIKE %s",
            (runs_before, f"08006: %:{victim}%"),
        ).fetchone()
        assert recorded > 0

        # The fold transactions the crash cut off in the middle of their
        # two-phase commit are finished (committed or rolled back, as the
        # coordinator decided); then a durable call that failed counted exactly
        # when its event ids were claimed, all of them or none.
        c.execute("SELECT recover_prepared_transactions()")
        durable_id = c.execute("SELECT id FROM tally.counters WHERE name = %s", (durable,)).fetchone()[0]
        asked = [i for _, ids in unknown if ids for i in ids]
        claimed = {
            r[0]
            for r in c.execute(
                "SELECT event_id FROM tally.event_ids WHERE counter_id = %s AND event_id = ANY (%s)",
                (durable_id, asked),
            ).fetchall()
        }
        unknown_fast = Truth()
        for items, ids in unknown:
            if ids is None:
                for inc in items:
                    unknown_fast.add(*inc)
                continue
            hit = [i in claimed for i in ids]
            assert all(hit) or not any(hit), f"a batch counted in part: {list(zip(ids, hit, strict=True))}"
            if all(hit):
                for inc in items:
                    truth.add(*inc)

        compact(c)
        start, end = window()
        # Durable: every acknowledged increment, exactly, on both workers.
        compared = assert_matches(c, subset(truth, lambda c, k: c == durable), start, end)
        # Fast on the worker that stayed up: exactly.
        compared += assert_matches(c, subset(truth, lambda c, k: c == fast and ports[k] == other), start, end)
        assert compared > 400
        # Fast on the killed worker: what was not folded before the crash is
        # lost, nothing is counted twice: no total, no bucket above the truth
        # (plus the calls that failed, which may have committed just before).
        over = []
        lost = 0
        for key in sorted(k for k in KEYS if ports[k] == victim):
            got = c.execute("SELECT tally.counter_value(%s, %s)", (fast, key)).fetchone()[0]
            lost += max(0, truth.totals.get((fast, key), 0) - got)
            if got > truth.totals.get((fast, key), 0) + unknown_fast.totals.get((fast, key), 0):
                over.append((key, got, truth.totals.get((fast, key), 0)))
            for g in ("minute", "hour", "day", "week", "month"):
                acked = truth.buckets.get((fast, key, g), {})
                maybe = unknown_fast.buckets.get((fast, key, g), {})
                for bucket, value in c.execute(
                    "SELECT bucket, value FROM tally.counter_series(%s, %s, %s, %s, %s)", (fast, key, g, start, end)
                ).fetchall():
                    if value > acked.get(bucket, 0) + maybe.get(bucket, 0):
                        over.append((key, g, bucket, value, acked.get(bucket, 0)))
        assert not over, f"values above the truth (counted twice?): {over[:10]}"
        print(
            f"\nworker killed: {failed} calls failed ({len(claimed)} of their durable increments had committed),"
            f" {lost} acknowledged fast increments lost on it"
        )

        # The loss is reported: one reset, on the killed worker, none elsewhere;
        # tally.health says critical until acknowledged.
        nodes = [
            r[0]
            for r in c.execute(
                "SELECT node FROM tally.crash_reset_log WHERE id > %s ORDER BY id", (resets_before,)
            ).fetchall()
        ]
        assert nodes == [f"127.0.0.1:{victim}"], nodes
        assert crash_status(c) == "critical"
        assert c.execute("SELECT tally.acknowledge_crash()").fetchone()[0] == 1
        assert crash_status(c) == "ok"


# -- 2. the coordinator killed inside a fold's commit ---------------------------

SLEEPER = """
CREATE OR REPLACE FUNCTION public.tally_fault_sleep() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    -- once per transaction, when it commits (or prepares): deferred
    IF current_setting('tally_fault.slept', true) IS DISTINCT FROM 'yes' THEN
        PERFORM set_config('tally_fault.slept', 'yes', true);
        PERFORM pg_sleep(4);
    END IF;
    RETURN NULL;
END
$f$
"""


def write_backlog(conn: psycopg.Connection, truth: Truth, counters: list[str], rnd: random.Random, n: int) -> None:
    """`n` increments in batches of 500, both signs, on both workers."""
    now = datetime.now(UTC)
    for _ in range(n // 500):
        batch = [
            (
                rnd.choice(counters),
                rnd.choice(KEYS),
                rnd.choice([1, 1, 2, 5, -1, -3]),
                now - timedelta(seconds=rnd.uniform(0, DAYS_BACK * 86400)),
            )
            for _ in range(500)
        ]
        conn.execute(
            "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
            tuple(list(col) for col in zip(*batch, strict=True)),
        )
        for inc in batch:
            truth.add(*inc)


def folded_rows(conn: psycopg.Connection, counters: list[str]) -> tuple[int, int]:
    """(totals rows, pending deltas) of these counters."""
    return conn.execute(
        """
        SELECT (SELECT count(*) FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id
                WHERE c.name = ANY (%s)),
               (SELECT count(*) FROM tally.delta AS d JOIN tally.counters AS c ON c.id = d.counter_id
                WHERE c.name = ANY (%s))
        """,
        (counters, counters),
    ).fetchone()


def compact_in_thread(dsn: str, setup: list[str]) -> tuple[threading.Thread, dict]:
    """CALL tally.compact() on a connection of its own, in a thread; the
    result dict gets its pid, then the error it ended with (None: none)."""
    result: dict = {}
    ready = threading.Event()

    def run() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True) as c:
                c.execute("SET application_name = 'tally fault compactor'")
                for statement in setup:
                    c.execute(statement)
                result["pid"] = c.info.backend_pid
                ready.set()
                c.execute("CALL tally.compact()")
                result["error"] = None
        except psycopg.Error as exc:
            result["error"] = exc
        finally:
            ready.set()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert ready.wait(30)
    return t, result


def wait_for(what: str, check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_the_coordinator_killed_inside_a_fold_s_commit_folds_nothing_twice(
    citus_dsn: str, cconn: psycopg.Connection, name: str
) -> None:
    counters = list(make_counters(cconn, name))
    rnd = random.Random(11)
    truth = Truth()
    start, end = window()
    coordinator = base_port(citus_dsn)
    worker1 = node_dsn(citus_dsn, 1)
    totals_on_1 = [
        r[0]
        for r in cconn.execute(
            "SELECT shard_name FROM citus_shards WHERE table_name = 'tally.totals'::regclass AND nodeport = %s",
            (coordinator + 1,),
        ).fetchall()
    ]
    assert totals_on_1
    # Nothing of another test's may be left pending: this test counts what
    # each fold folds.
    compact(cconn)
    write_backlog(cconn, truth, counters, rnd, 6000)
    assert folded_rows(cconn, counters) == (0, 6000)

    # A. Killed while the workers PREPARE: worker 1 is slow to (a deferred
    # trigger on its totals shards sleeps at PREPARE TRANSACTION), worker 2
    # has prepared. The coordinator never decided to commit: recovery rolls
    # both back, and every delta is pending again.
    with psycopg.connect(worker1, autocommit=True) as w:
        w.execute("SET citus.enable_ddl_propagation = off")
        w.execute("SET citus.enable_manual_changes_to_shards = on")
        w.execute(SLEEPER)
        for shard in totals_on_1:
            w.execute(
                f"CREATE CONSTRAINT TRIGGER tally_fault_sleep AFTER INSERT OR UPDATE ON {shard}"
                " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.tally_fault_sleep()"
            )
    try:
        thread, result = compact_in_thread(citus_dsn, [])

        def preparing() -> bool:
            with psycopg.connect(worker1, autocommit=True) as w:
                return w.execute(
                    "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event = 'PgSleep' AND query LIKE 'PREPARE TRANSACTION%%')"
                ).fetchone()[0]

        wait_for("worker 1 to PREPARE the fold", preparing)
        # (one prepared transaction per connection: more than one when the
        # fold made rollup partitions, DDL Citus runs on connections of its own)
        wait_for("worker 2 to PREPARE the fold", lambda: prepared_on(citus_dsn, 2) >= 1)
        kill_node(citus_dsn, 0)
        thread.join(30)
        assert isinstance(result["error"], psycopg.OperationalError), result
        wait_for("worker 1's PREPARE to end", lambda: not preparing() and prepared_on(citus_dsn, 1) >= 1)
    finally:
        citus(citus_dsn, "start-node", "0")  # (idempotent)
        with psycopg.connect(citus_dsn, autocommit=True) as c:
            # (the prepared transactions hold the shards the triggers are on)
            c.execute("SELECT recover_prepared_transactions()")
        with psycopg.connect(worker1, autocommit=True) as w:
            w.execute("SET citus.enable_ddl_propagation = off")
            w.execute("SET citus.enable_manual_changes_to_shards = on")
            w.execute("SET lock_timeout = '10s'")
            for shard in totals_on_1:
                w.execute(f"DROP TRIGGER IF EXISTS tally_fault_sleep ON {shard}")
            w.execute("DROP FUNCTION IF EXISTS public.tally_fault_sleep()")
    with psycopg.connect(citus_dsn, autocommit=True) as c:
        c.execute("SELECT recover_prepared_transactions()")
        assert prepared_on(citus_dsn, 1) == prepared_on(citus_dsn, 2) == 0
        assert folded_rows(c, counters) == (0, 6000)  # rolled back on both workers
        assert_matches(c, truth, start, end)  # reads: all pending, all there

        # B. Killed after the coordinator committed, before the workers
        # did: the commit record is flushed, then the backend waits for a
        # synchronous standby that never comes (only this compactor's
        # session asks for one), so COMMIT PREPARED is never sent. Recovery
        # commits the prepared fold on both workers: folded once.
        write_backlog(c, truth, counters, rnd, 3000)
        runs_before = c.execute("SELECT coalesce(max(id), 0) FROM tally.fold_runs").fetchone()[0]
        c.execute("ALTER SYSTEM SET synchronous_standby_names = 'tally_fault_no_standby'")
        c.execute("ALTER SYSTEM SET synchronous_commit = 'local'")
        c.execute("SELECT pg_reload_conf()")
    try:
        thread, result = compact_in_thread(citus_dsn, ["SET synchronous_commit = on"])
        with psycopg.connect(citus_dsn, autocommit=True) as c:
            wait_for(
                "the fold's commit to wait for the standby",
                lambda: (
                    c.execute("SELECT wait_event FROM pg_stat_activity WHERE pid = %s", (result["pid"],)).fetchone()[0]
                    == "SyncRep"
                ),
            )
            c.execute("ALTER SYSTEM RESET synchronous_standby_names")
            c.execute("ALTER SYSTEM RESET synchronous_commit")
        # decided, not yet committed there
        assert prepared_on(citus_dsn, 1) >= 1 and prepared_on(citus_dsn, 2) >= 1
        kill_node(citus_dsn, 0)
        thread.join(30)
        assert isinstance(result["error"], psycopg.OperationalError), result
    finally:
        citus(citus_dsn, "start-node", "0")  # (idempotent)
        with psycopg.connect(citus_dsn, autocommit=True) as c:
            c.execute("ALTER SYSTEM RESET synchronous_standby_names")
            c.execute("ALTER SYSTEM RESET synchronous_commit")
            c.execute("SELECT pg_reload_conf()")
    with psycopg.connect(citus_dsn, autocommit=True) as c:
        (deltas,) = c.execute(
            "SELECT sum(deltas) FROM tally.fold_runs WHERE id > %s AND outcome = 'ok'", (runs_before,)
        ).fetchone()
        assert deltas == 9000  # the coordinator's record of the fold survived: it committed
        c.execute("SELECT recover_prepared_transactions()")  # (or the maintenance daemon did already)
        assert prepared_on(citus_dsn, 1) == prepared_on(citus_dsn, 2) == 0
        totals, pending = folded_rows(c, counters)
        assert pending == 0 and totals == len(truth.totals)  # folded on both workers, once
        assert_matches(c, truth, start, end)
        # and folding goes on, counting each delta once
        write_backlog(c, truth, counters, rnd, 1000)
        compact(c)
        assert_matches(c, truth, start, end)


# -- 3. a worker added and the shards rebalanced under load ----------------------


def test_a_worker_added_and_rebalanced_under_load_stays_exact(
    citus_dsn: str, cconn: psycopg.Connection, name: str
) -> None:
    fast, durable = make_counters(cconn, name)
    port3 = base_port(citus_dsn) + 3
    db = cconn.execute("SELECT current_database()").fetchone()[0]
    made_node = not Path(citus(citus_dsn, "datadir", "3"), "PG_VERSION").exists()
    try:
        citus(citus_dsn, "add-worker")  # node 3 up (made if new), registered in its `tally` database
    except AssertionError:
        if made_node:  # the cluster as it was (fresh-db registers node 3 whenever its directory exists)
            env = {**os.environ, "CITUS_PORT": str(port3 - 3)}
            subprocess.run([str(CITUS), "stop-node", "3"], env=env, check=False)
            shutil.rmtree(citus(citus_dsn, "datadir", "3"), ignore_errors=True)
        raise
    with psycopg.connect(citus(citus_dsn, "node-dsn", "3", "postgres"), autocommit=True) as c:
        if c.execute("SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = %s)", (db,)).fetchone()[0]:
            c.execute(f'CREATE DATABASE "{db}"')
    with psycopg.connect(node_dsn(citus_dsn, 3), autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS citus")
    registered = cconn.execute("SELECT EXISTS (SELECT FROM pg_dist_node WHERE nodeport = %s)", (port3,)).fetchone()[0]

    def on_node3() -> int:
        return cconn.execute(
            "SELECT count(*) FROM citus_shards WHERE nodeport = %s AND table_name = 'tally.delta'::regclass", (port3,)
        ).fetchone()[0]

    try:
        if registered:  # left by an earlier run: start from two workers
            cconn.execute("SELECT citus_drain_node('127.0.0.1', %s, shard_transfer_mode => 'block_writes')", (port3,))
            cconn.execute("SELECT citus_remove_node('127.0.0.1', %s)", (port3,))
        cconn.execute("SELECT citus_add_node('127.0.0.1', %s)", (port3,))
        assert on_node3() == 0
        runs_before = cconn.execute("SELECT coalesce(max(id), 0) FROM tally.fold_runs").fetchone()[0]

        load = Load(citus_dsn, fast, durable, writers=4)
        try:
            load.wait_calls(200)
            calls_before = load.calls.value
            # tally's delta shards cannot be moved by logical replication
            # (UNLOGGED, no replica identity): writes are blocked per shard
            # while it is copied, and the writers wait.
            cconn.execute(
                "SELECT citus_rebalance_start(rebalance_strategy => 'by_shard_count',"
                " shard_transfer_mode => 'block_writes')"
            )
            cconn.execute("SELECT citus_rebalance_wait()")
            calls_during = load.calls.value - calls_before
            load.wait_calls(200)
        finally:
            truth, unknown, failed, _, (compactions, compactions_failed) = load.stop()
        assert failed == 0 and not unknown
        assert compactions_failed == 0 and compactions > 0
        assert calls_during > 20, "the writers did not write while the shards moved"
        (state,) = cconn.execute("SELECT state FROM pg_dist_background_job ORDER BY job_id DESC LIMIT 1").fetchone()
        assert state == "finished", state
        moved = on_node3()
        assert moved > 0, "no shard moved to the new worker"
        # each colocated table's shard moved with its deltas' shard
        (groups,) = cconn.execute(
            """
            SELECT count(DISTINCT s.shardid)
            FROM citus_shards AS s
            WHERE s.nodeport = %s AND s.table_name IN ('tally.totals'::regclass, 'tally.crash_marker'::regclass)
            """,
            (port3,),
        ).fetchone()
        assert groups == 2 * moved
        failed_runs = cconn.execute(
            "SELECT count(*) FROM tally.fold_runs WHERE id > %s AND outcome = 'failed'", (runs_before,)
        ).fetchone()[0]
        assert failed_runs == 0
        compact(cconn)
        start, end = window()
        assert assert_matches(cconn, truth, start, end) > truth.increments // 10
        assert truth.increments > 1000
        # the keys live on three workers now
        assert len(set(key_ports(cconn, KEYS).values())) == 3
    finally:
        if cconn.execute("SELECT EXISTS (SELECT FROM pg_dist_node WHERE nodeport = %s)", (port3,)).fetchone()[0]:
            cconn.execute("SELECT citus_drain_node('127.0.0.1', %s, shard_transfer_mode => 'block_writes')", (port3,))
            cconn.execute("SELECT citus_remove_node('127.0.0.1', %s)", (port3,))
        if made_node:
            # The cluster as it was: two workers (fresh-db registers node 3
            # whenever its data directory exists).
            with psycopg.connect(citus(citus_dsn, "node-dsn", "0", "tally"), autocommit=True) as c:
                c.execute(
                    "SELECT citus_remove_node('127.0.0.1', %s) FROM pg_dist_node WHERE nodeport = %s", (port3, port3)
                )
            citus(citus_dsn, "stop-node", "3")
            shutil.rmtree(citus(citus_dsn, "datadir", "3"))
    assert on_node3() == 0


# -- 4. one shard moved while writers on every node write into it ---------------


def local_append_shards(dsn: str) -> set[int]:
    """The delta shards a node's body of tally._append_local writes into."""
    with psycopg.connect(dsn, autocommit=True) as c:
        (src,) = c.execute(
            "SELECT prosrc FROM pg_proc"
            " WHERE oid = 'tally._append_local(text, text, bigint, timestamptz)'::regprocedure"
        ).fetchone()
    found = re.search(r"delta shards \{([0-9,]*)\}", src)
    return {int(s) for s in found.group(1).split(",") if s} if found else set()


def delta_shards_on(conn: psycopg.Connection, port: int) -> set[int]:
    rows = conn.execute(
        "SELECT shardid FROM citus_shards WHERE table_name = 'tally.delta'::regclass AND nodeport = %s", (port,)
    ).fetchall()
    return {r[0] for r in rows}


def test_a_shard_moved_under_load_through_every_node_stays_exact(
    citus_dsn: str, cconn: psycopg.Connection, name: str
) -> None:
    """Writers on the coordinator and on both workers, some in transaction
    blocks (single increments of fast counters take a node's local append
    where the key's shard is, durable ones and batches the general path), a
    compactor folding, and the shard of the hot key
    moved to the other worker (block_writes) under them: every node's body
    of tally._append_local still names the shard's old place until
    tally.maintain writes it again, and no increment is lost or counted
    twice either way. The shard is moved back at the end."""
    fast, durable = make_counters(cconn, name)
    w1, w2 = base_port(citus_dsn) + 1, base_port(citus_dsn) + 2
    (shard,) = cconn.execute(
        "SELECT get_shard_id_for_distribution_column('tally.delta', %s::text)", (workers.HOT_KEY,)
    ).fetchone()
    source = key_ports(cconn, [workers.HOT_KEY])[workers.HOT_KEY]
    target = w2 if source == w1 else w1
    source_dsn, target_dsn = (node_dsn(citus_dsn, 1 if p == w1 else 2) for p in (source, target))
    cconn.execute("SELECT * FROM tally.maintain()")
    assert local_append_shards(source_dsn) == delta_shards_on(cconn, source) and shard in local_append_shards(
        source_dsn
    )
    assert local_append_shards(target_dsn) == delta_shards_on(cconn, target)

    def move(to_port: int, from_port: int) -> float:
        return move_shard(cconn, shard, ("127.0.0.1", from_port), ("127.0.0.1", to_port))

    # The first writers on the workers in transaction blocks: Citus runs
    # their calls where they are sent, so the source node's body is asked
    # for the moved shard's keys after the move too.
    writer_dsns = [source_dsn, target_dsn, citus_dsn]
    moved = False
    try:
        load = Load(citus_dsn, fast, durable, writers=6, writer_dsns=writer_dsns, blocks=2)
        try:
            load.wait_calls(300)
            calls_before = load.calls.value
            took = move(target, source)
            moved = True
            calls_during = load.calls.value - calls_before
            # the bodies still name the old places: the moved shard's writes
            # find it gone and take the general path
            assert shard in local_append_shards(source_dsn) and shard not in local_append_shards(target_dsn)
            load.wait_calls(300)
            cconn.execute("SELECT * FROM tally.maintain()")
            assert shard not in local_append_shards(source_dsn) and shard in local_append_shards(target_dsn)
            load.wait_calls(300)
        finally:
            truth, unknown, failed, _, (compactions, compactions_failed) = load.stop()
        print(
            f"\n  shard {shard} moved {source} -> {target} under load in {took:.2f} s (writers of its keys wait"
            f" at most that long); {calls_during} calls acknowledged meanwhile"
        )
        assert failed == 0 and not unknown
        assert compactions_failed == 0 and compactions > 0
        assert calls_during > 0
        assert key_ports(cconn, [workers.HOT_KEY])[workers.HOT_KEY] == target
        compact(cconn)
        start, end = window()
        assert assert_matches(cconn, truth, start, end) > truth.increments // 10
        assert truth.increments > 1000
    finally:
        if moved:
            move(source, target)
        cconn.execute("SELECT * FROM tally.maintain()")
    assert shard in local_append_shards(source_dsn)
