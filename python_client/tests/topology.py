"""Production topologies the tests start and stop themselves: a PostgreSQL
primary of their own with a streaming hot standby (pg_basebackup), and a
pgbouncer in transaction pooling mode in front of a server. Everything runs
as the `postgres` OS user (pg_ctl and initdb refuse root), on loopback and
Unix sockets under a temporary directory, and is removed afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

PGBIN = Path("/usr/lib/postgresql/15/bin")
PGUSER_OS = "postgres"
REPO = Path(__file__).resolve().parents[2]


def as_postgres(*cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a command as the postgres OS user (directly when we are it)."""
    argv = list(cmd) if os.geteuid() != 0 else ["runuser", "-u", PGUSER_OS, "--", *cmd]
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def workdir(prefix: str) -> Path:
    """A directory the postgres OS user owns (not under /root, mode 700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    if os.geteuid() == 0:
        shutil.chown(path, PGUSER_OS, PGUSER_OS)
    return path


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Server:
    """One PostgreSQL 15 server: a data directory, a port, a socket dir."""

    def __init__(self, base: Path, name: str, port: int | None = None) -> None:
        self.base = base
        self.name = name
        self.data = base / name
        self.sock = base / "run"
        self.log = base / f"{name}.log"
        self.port = port or free_port()

    def dsn(self, dbname: str = "postgres", **extra: str) -> str:
        params = {"host": str(self.sock), "port": str(self.port), "user": "postgres", "dbname": dbname, **extra}
        return " ".join(f"{k}={v}" for k, v in params.items())

    def initdb(self, conf: dict[str, str] | None = None) -> Server:
        as_postgres("mkdir", "-p", str(self.sock))
        as_postgres(
            str(PGBIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--locale=C.UTF-8",
        )  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.sock}'",
            "max_connections": "100",
            "shared_buffers": "64MB",
            "timezone": "'UTC'",
            "max_wal_senders": "5",
            "wal_keep_size": "256MB",
            **(conf or {}),
        }
        with open(self.data / "postgresql.conf", "a") as f:  # the directory is the postgres user's; root writes
            f.write("\n# tally test server\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        with open(self.data / "pg_hba.conf", "a") as f:
            f.write("host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n")
        return self

    def start(self) -> Server:
        as_postgres(
            str(PGBIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "120",
            "-o", f"-p {self.port}", "start",
        )  # fmt: skip
        return self

    def stop(self, mode: str = "fast") -> None:
        as_postgres(str(PGBIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "120", "stop", check=False)

    def promote(self) -> None:
        as_postgres(str(PGBIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "120", "promote")

    def standby(self, name: str = "standby") -> Server:
        """A streaming hot standby of this server (pg_basebackup -R), started."""
        replica = Server(self.base, name)
        as_postgres(
            str(PGBIN / "pg_basebackup"), "-h", str(self.sock), "-p", str(self.port), "-U", "postgres",
            "-D", str(replica.data), "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        return replica.start()

    def connect(self, dbname: str = "postgres", **kwargs: object) -> psycopg.Connection:
        return psycopg.connect(self.dsn(dbname), autocommit=True, **kwargs)

    def create_database(self, dbname: str) -> str:
        with self.connect() as c:
            c.execute(f'CREATE DATABASE "{dbname}"')
        return self.dsn(dbname)

    def migrate(self, dbname: str) -> None:
        subprocess.run(
            [str(REPO / ".venv" / "bin" / "alembic"), "-c", str(REPO / "alembic.ini"), "upgrade", "head"],
            check=True,
            env={**os.environ, "TALLY_DSN": self.dsn(dbname)},
            capture_output=True,
        )


def caught_up(primary: Server, standby: Server, timeout: float = 60) -> None:
    """Wait until the standby has replayed everything the primary wrote."""
    with primary.connect() as p:
        (lsn,) = p.execute("SELECT pg_current_wal_lsn()").fetchone()
    with standby.connect() as s:
        wait_until(
            lambda: s.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()[0],
            timeout,
            "the standby to replay the primary's WAL",
        )


class Bouncer:
    """pgbouncer (Debian's 1.18) in front of a server, transaction pooling,
    loopback, trust: every transaction may run on another server connection,
    and at most `pool_size` server connections per database and user."""

    def __init__(self, server_host: str, server_port: int, pool_size: int = 4, mode: str = "transaction") -> None:
        self.base = workdir("tally-bouncer-")
        self.port = free_port()
        ini = self.base / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={server_host} port={server_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            f"unix_socket_dir = {self.base}\n"
            "auth_type = trust\n"
            f"auth_file = {self.base / 'users.txt'}\n"
            f"pool_mode = {mode}\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 500\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.base / 'pgbouncer.log'}\n"
            f"pidfile = {self.base / 'pgbouncer.pid'}\n"
            "admin_users = postgres\n"
        )
        (self.base / "users.txt").write_text('"postgres" ""\n')
        if os.geteuid() == 0:
            for path in self.base.iterdir():
                shutil.chown(path, PGUSER_OS, PGUSER_OS)
        as_postgres("/usr/sbin/pgbouncer", "-d", str(ini))
        wait_until(self._answers, 20, "pgbouncer to listen")

    def _answers(self) -> bool:
        try:
            with psycopg.connect(self.dsn("pgbouncer"), autocommit=True, prepare_threshold=None):
                return True
        except psycopg.OperationalError:
            return False

    def dsn(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def stop(self) -> None:
        pid = (self.base / "pgbouncer.pid").read_text().strip()
        subprocess.run(["kill", "-INT", pid], check=False)
        wait_until(lambda: not (self.base / "pgbouncer.pid").exists(), 20, "pgbouncer to stop")
        shutil.rmtree(self.base, ignore_errors=True)
