"""What both benchmarks share: the pgbench runner, a throwaway Redis, a
compactor thread, the lag sampler, percentiles and a timed progress bar.

`bench/run.py` (`make bench`) and `bench/compactor.py` (`make bench-compactor`)
import this module as `lib` (each runs as a script from `bench/`). The bench
needs what the tally package does not: pgbench, redis-server and
redis-benchmark, and matplotlib for the chart.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict
from tally.progress import Progress

PGBENCH = os.environ.get("TALLY_PGBENCH", "/usr/lib/postgresql/15/bin/pgbench")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_BENCHMARK = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"
RESULTS = Path(__file__).resolve().parent / "results"


def pct(values: list[float], q: float) -> float:
    """The q-quantile of values (nearest rank); 0 for no values."""
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def say(msg: str) -> None:
    print(msg, flush=True)


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
        p = conninfo_to_dict(dsn)
        self.conn_args = ["-h", str(p.get("host", "localhost")), "-p", str(p.get("port", 5432))]
        self.conn_args += ["-U", str(p.get("user", "postgres")), str(p["dbname"])]
        self.statements = False  # pg_stat_statements available: track nested statements too
        self.tmp = Path(tempfile.mkdtemp(prefix="tally-bench-"))
        os.chmod(self.tmp, 0o755)

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
    ) -> subprocess.Popen:
        """Start pgbench on ``script`` (one transaction per run of it); ``rate`` caps the total rate (-R)."""
        f = self.tmp / f"{name}.sql"
        f.write_text(script)
        args = [PGBENCH, "-n", "-M", protocol, "-c", str(clients), "-j", str(min(clients, 2))]
        args += ["-T", str(int(seconds)), "-f", str(f)]
        if rate:
            args += ["-R", str(rate)]
        env = {**os.environ, "PGOPTIONS": "-c pg_stat_statements.track=all"} if self.statements else None
        return subprocess.Popen(
            [*args, *self.conn_args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
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


# -- the compactor while a load runs --------------------------------------------------
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
    dsn: str, until: Callable[[], bool], every: float = 0.25, tick: Callable[[], None] | None = None
) -> list[float]:
    """Age in seconds of the oldest pending delta (tally.compactor_lag), every
    ``every`` seconds until ``until()``; ``tick`` is called after each sample."""
    lags: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as probe:
        while not until():
            lags.append(
                float(
                    probe.execute(
                        "SELECT coalesce(extract(epoch FROM max(oldest_pending_age)), 0) FROM tally.compactor_lag"
                    ).fetchone()[0]
                )
            )
            if tick:
                tick()
            time.sleep(every)
    return lags


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
