"""What the benchmarks run their cases with: the pgbench runner, a throwaway
Redis, a compactor thread, the lag and session samplers, threads of one
process, CPU time from /proc, and the few figures every case computes.

The bench needs what the tally package does not: pgbench, redis-server and
redis-benchmark, redis-py, and matplotlib for the chart.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict
from tally.progress import Progress

PGBENCH = os.environ.get("TALLY_PGBENCH", "/usr/lib/postgresql/15/bin/pgbench")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_BENCHMARK = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"
HZ = os.sysconf("SC_CLK_TCK")


# -- figures ------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """The q-quantile of values (nearest rank); 0 for no values."""
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b to two places; None when either is missing (a case skipped) or b is 0."""
    return round(a / b, 2) if a is not None and b else None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def wait_timed(proc: subprocess.Popen, seconds: float, label: str) -> None:
    """Show a time-based bar while ``proc`` runs for about ``seconds``."""
    with Progress(seconds, label) as bar:
        while proc.poll() is None:
            bar.update(time.monotonic() - bar.started)
            time.sleep(0.1)


# -- pgbench ----------------------------------------------------------------------
class PgBench:
    """Runs pgbench scripts against the database of ``dsn``: ``with PgBench(dsn) as pg: pg.run(...)``."""

    def __init__(self, dsn: str) -> None:
        self.conn_args = self._conn_args(dsn)
        self.statements = False  # pg_stat_statements available: track nested statements too
        self.tmp = Path(tempfile.mkdtemp(prefix="tally-bench-"))
        os.chmod(self.tmp, 0o755)

    @staticmethod
    def _conn_args(dsn: str) -> list[str]:
        p = conninfo_to_dict(dsn)
        return [
            *("-h", str(p.get("host", "localhost")), "-p", str(p.get("port", 5432))),
            *("-U", str(p.get("user", "postgres")), str(p["dbname"])),
        ]

    def __enter__(self) -> PgBench:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(
        self,
        name: str,
        script: str,
        clients: int,
        seconds: float,
        rate: int | None = None,
        protocol: str = "prepared",
        dsn: str | None = None,
    ) -> subprocess.Popen:
        """Start pgbench on ``script`` (one transaction per run of it); ``rate`` caps the total rate (-R);
        ``dsn``: another database or node than this PgBench's."""
        f = self.tmp / f"{name}.sql"
        f.write_text(script)
        args = [PGBENCH, "-n", "-M", protocol, "-c", str(clients), "-j", str(min(clients, 2))]
        args += ["-T", str(int(seconds)), "-f", str(f)]
        if rate:
            args += ["-R", str(rate)]
        env = {**os.environ, "PGOPTIONS": "-c pg_stat_statements.track=all"} if self.statements else None
        return subprocess.Popen(
            [*args, *(self._conn_args(dsn) if dsn else self.conn_args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )

    @staticmethod
    def result(proc: subprocess.Popen) -> tuple[float, int]:
        """(tps, transactions processed) of a finished run; raises if pgbench failed."""
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed ({proc.returncode}): {err.strip()[-2000:]}")
        tps = next(float(line.split()[2]) for line in out.splitlines() if line.startswith("tps ="))
        done = next(int(line.split(":")[1]) for line in out.splitlines() if "actually processed" in line)
        return tps, done

    @staticmethod
    def stop(proc: subprocess.Popen) -> None:
        """End a run before its time (its figures are not read)."""
        proc.terminate()
        proc.communicate()

    def run(self, name: str, script: str, clients: int, seconds: float, label: str) -> tuple[float, int]:
        """Run to the end with a progress bar; (tps, transactions processed)."""
        proc = self.start(name, script, clients, seconds)
        wait_timed(proc, seconds, label)
        return self.result(proc)

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


# -- Redis ------------------------------------------------------------------------
def redis_installed() -> bool:
    return os.access(REDIS_SERVER, os.X_OK) and os.access(REDIS_BENCHMARK, os.X_OK)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def redis_server(aof: bool) -> Iterator[int]:
    """A throwaway redis-server on loopback (no RDB snapshots; AOF with
    appendfsync everysec if ``aof``); yields its port, removes its files after."""
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="tally-redis-")
    args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir]
    args += ["--appendonly", "yes", "--appendfsync", "everysec"] if aof else ["--appendonly", "no"]
    server = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.05)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)


def redis_benchmark(port: int, clients: int, requests: int) -> float:
    """INCR on one key, ``requests`` times over ``clients`` connections; requests per second."""
    args = [REDIS_BENCHMARK, "-h", "127.0.0.1", "-p", str(port), "-c", str(clients), "-n", str(requests)]
    out = subprocess.run(
        [*args, "-t", "incr", "-P", "1", "--csv"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    row = next(line for line in out.splitlines() if line.startswith('"INCR"'))
    return float(row.split(",")[1].strip('"'))


def redis_cli(port: int, *cmd: str) -> str:
    """A tiny RESP client (redis-cli may not be installed with the server)."""
    payload = f"*{len(cmd)}\r\n" + "".join(f"${len(c.encode())}\r\n{c}\r\n" for c in cmd)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload.encode())
        data = b""
        while not data.endswith(b"\r\n") or (data.startswith(b"$") and data.count(b"\r\n") < 2):
            data += s.recv(4096)
    lines = data.decode().split("\r\n")
    return lines[1] if lines[0].startswith("$") else lines[0].lstrip("+:")


# -- the compactor while a load runs, and what it leaves pending --------------------------
class Compactor:
    """``CALL tally.compact_loop(seconds, interval)`` in a background connection,
    called again until the ``with`` block ends; its first error is raised then."""

    def __init__(self, dsn: str, seconds: float = 2, interval: float = 0.5) -> None:
        self.dsn, self.seconds, self.interval = dsn, seconds, interval
        self.stop, self.errors = threading.Event(), []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as c:
                while not self.stop.is_set():
                    c.execute("CALL tally.compact_loop(%s::float8, %s::float8)", (self.seconds, self.interval))
        except Exception as exc:  # raised in __exit__
            self.errors.append(exc)

    def __enter__(self) -> Compactor:
        self.thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=120)
        if self.errors and exc_type is None:
            raise self.errors[0]


def sample_lag(
    dsn: str,
    until: Callable[[], bool],
    every: float = 0.25,
    tick: Callable[[], None] | None = None,
    counter_id: int | None = None,
) -> list[float]:
    """Lag in seconds, every ``every`` seconds until ``until()``: the age of
    the oldest pending delta (tally.compactor_lag), or with ``counter_id``
    the age of that counter's oldest delta row; ``tick`` is called after each sample."""
    if counter_id is None:
        sql = "SELECT coalesce(extract(epoch FROM max(oldest_pending_age)), 0) FROM tally.compactor_lag"
    else:
        sql = "SELECT coalesce(extract(epoch FROM now() - min(written_at)), 0) FROM tally.delta WHERE counter_id = %s"
    params = None if counter_id is None else (counter_id,)
    lags: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as probe:
        while not until():
            lags.append(float(probe.execute(sql, params).fetchone()[0]))
            if tick:
                tick()
            time.sleep(every)
    return lags


# -- what sessions are doing -------------------------------------------------------------
class SessionSampler:
    """What the sessions named ``app`` are doing, from pg_stat_activity every
    ``every`` seconds while the ``with`` block runs: ``label(state,
    wait_event_type, wait_event)`` names each sample; ``shares()`` after."""

    def __init__(self, dsn: str, app: str, every: float, label: Callable[[str, str | None, str | None], str]) -> None:
        self.dsn, self.app, self.every, self.label = dsn, app, every, label
        self.stop, self.counts = threading.Event(), Counter()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as c:
            while not self.stop.is_set():
                for state, wtype, wevent, n in c.execute(
                    "SELECT state, wait_event_type, wait_event, count(*) FROM pg_stat_activity"
                    " WHERE application_name = %s AND pid <> pg_backend_pid() GROUP BY 1, 2, 3",
                    (self.app,),
                ):
                    self.counts[self.label(state, wtype, wevent)] += n
                time.sleep(self.every)

    def __enter__(self) -> SessionSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)

    def shares(self, top: int | None = None) -> dict[str, float]:
        """Each label's share of the samples, most seen first (the ``top`` first)."""
        total = sum(self.counts.values()) or 1
        return {k: round(v / total, 3) for k, v in self.counts.most_common(top)}


# -- threads of one Python process ---------------------------------------------------------
def threads_for(threads: int, seconds: float, op: Callable[[int], object], label: str) -> tuple[int, float]:
    """Call ``op(thread)`` in a loop from ``threads`` threads for about
    ``seconds``; (calls that returned, seconds from start to the last join).
    The first error of any thread is raised after all have stopped."""
    stop = threading.Event()
    done = [0] * threads
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            while not stop.is_set():
                op(n)
                done[n] += 1
        except BaseException as exc:  # raised below
            errors.append(exc)
            stop.set()

    workers = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(threads)]
    t0 = time.monotonic()
    for w in workers:
        w.start()
    with Progress(seconds, label) as bar:
        while time.monotonic() - t0 < seconds and not stop.is_set():
            bar.update(time.monotonic() - t0)
            time.sleep(0.1)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - t0
    if errors:
        raise errors[0]
    return sum(done), elapsed


# -- CPU time, from /proc (every server the benches measure runs on this machine) -----------------
def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process on this machine has used so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / HZ


def node_cpu(postmaster: int) -> float:
    """CPU seconds used so far by a PostgreSQL node: the postmaster, its
    children that exited (cutime/cstime: the postmaster reaps them) and its
    children alive now (read first: one reaped meanwhile is counted twice,
    never lost)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            c = _stat(int(entry))
            if int(c[1]) == postmaster:
                total += int(c[11]) + int(c[12])
    total += sum(int(v) for v in _stat(postmaster)[11:15])
    return total / HZ


def parent_pid(pid: int) -> int:
    return int(_stat(pid)[1])


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far (/proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / HZ, sum(ticks) / HZ


def busy_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """The share of the machine's CPU that was busy between two machine_busy() readings."""
    return (after[0] - before[0]) / max(after[1] - before[1], 1e-9)


# -- where the run ran -------------------------------------------------------------------------
def environment(conn: psycopg.Connection, plan: dict) -> dict:
    """The machine, the server's version and settings, pgbench's and Redis's versions."""

    def setting(name: str) -> str:
        return str(conn.execute("SELECT current_setting(%s)", (name,)).fetchone()[0])

    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )

    def version(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "not installed"

    return {
        "when": utc_now(),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": setting("server_version"),
        "postgres_settings": {
            n: setting(n) for n in ("shared_buffers", "synchronous_commit", "fsync", "wal_level", "max_wal_size")
        },
        "pgbench": version([PGBENCH, "--version"]),
        "redis": version([REDIS_SERVER, "--version"]),
        "load_average_at_start": list(os.getloadavg()),
        "plan": plan,
    }
