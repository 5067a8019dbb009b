"""Set-up that recovers: each step `make demo` takes on a fresh clone
(`make deps`: the Python venv and its packages; `make db`: initdb and the
postmaster) can be interrupted anywhere, by Ctrl-C or a kill, and the same
command run again finishes it. The steps run in a copy of the checkout with a
cluster of its own (its own port), are interrupted where they are half done,
are run again, and then `make demo` runs from that copy.

Not interrupted here: apt-get and the Citus build, which change the machine
itself (scripts/lib.sh finish_dpkg, scripts/citus.sh ensure_citus).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import REPO

PGBIN = Path("/usr/lib/postgresql/15/bin")
# Not passed on to the copy's make: the outer make's and venv's settings, the suite's databases.
OUTER = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")


def free_port() -> int:
    """A loopback port nothing listens on, from TALLY_SETUP_PGPORT (default 54830) up."""
    first = int(os.environ.get("TALLY_SETUP_PGPORT", "54830"))
    for port in range(first, first + 50):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in {first}..{first + 49}")


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def runs(sid: int, *words: str) -> bool:
    """A process of session `sid` runs a command line with all these words in it."""
    return any(all(w in cmdline(pid) for w in words) for pid in session_pids(sid))


class Checkout:
    """A copy of the working tree (the files git tracks or would add), with
    make and the scripts run in it on a port of its own."""

    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        names = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
        for name in filter(None, (n.decode() for n in names)):
            src = REPO / name
            if src.is_file():
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, root / name)
        outer_bin = os.path.join(os.environ.get("VIRTUAL_ENV", str(REPO / ".venv")), "bin")
        env = {k: v for k, v in os.environ.items() if k not in OUTER and not k.startswith(("TALLY_", "PG"))}
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != outer_bin)
        env["PGPORT"] = str(port)
        self.env = env

    def run(self, *cmd: str, timeout: float = 600) -> tuple[int, str]:
        """Run cmd in the copy; its exit code and output. (Output goes through
        a file: a postmaster started by it must not hold a pipe of ours.)"""
        with tempfile.TemporaryFile("w+") as out:
            done = subprocess.run(
                list(cmd),
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                timeout=timeout,
            )
            out.seek(0)
            return done.returncode, out.read()

    def make(self, target: str) -> str:
        rc, out = self.run("make", target)
        assert rc == 0, f"make {target} failed ({rc}):\n{out[-4000:]}"
        return out

    def interrupt(self, target: str, at: Callable[[int], bool], sig: signal.Signals, after: float = 0.0) -> None:
        """`make target` in a session of its own, as from a terminal; once
        at(session) holds (and `after` seconds more), `sig` goes to its whole
        process group: what Ctrl-C (SIGINT) or a kill of everything (SIGKILL)
        does. Returns once no process of that run is left."""
        with tempfile.TemporaryFile("w+") as out:
            proc = subprocess.Popen(
                ["make", target],
                cwd=self.root,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
            deadline = time.monotonic() + 300
            while not at(proc.pid):
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    out.seek(0)
                    pytest.fail(f"make {target} was never at the point to interrupt it at:\n{out.read()[-4000:]}")
                time.sleep(0.01)
            time.sleep(after)
            os.killpg(proc.pid, sig)
            proc.wait(60)
            assert proc.returncode != 0, f"make {target} finished although it was interrupted"
        # What a terminal's Ctrl-C leaves running (nothing, or a child on its way out) ends by itself.
        deadline = time.monotonic() + 30
        while session_pids(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in session_pids(proc.pid):
            os.kill(pid, signal.SIGKILL)

    def script(self, *args: str) -> str:
        rc, out = self.run(str(self.root / "scripts" / "db.sh"), *args)
        assert rc == 0, out
        return out.strip()

    @property
    def venv(self) -> Path:
        return self.root / ".venv"

    def site_packages(self) -> list[Path]:
        return list(self.venv.glob("lib/python3*/site-packages/*.dist-info"))

    def cluster_base(self) -> Path:
        return Path(self.script("datadir")).parent

    def postmaster_pid(self) -> int | None:
        try:
            return int((Path(self.script("datadir")) / "postmaster.pid").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None

    def kill_postmaster(self) -> None:
        """SIGKILL the postmaster and wait for its backends to go: what a
        crash or a machine that stopped leaves (postmaster.pid behind)."""
        pid = self.postmaster_pid()
        assert pid is not None
        data = os.path.realpath(self.script("datadir"))
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            left = []
            for entry in filter(str.isdigit, os.listdir("/proc")):
                try:
                    if os.readlink(f"/proc/{entry}/cwd") == data:
                        left.append(entry)
                except OSError:
                    pass
            if not left:
                return
            time.sleep(0.05)
        pytest.fail(f"the killed postmaster's processes are still there: {left}")

    def remove_cluster(self) -> None:
        """Stop the cluster and remove its files: the state of a fresh clone."""
        self.run(str(self.root / "scripts" / "db.sh"), "stop")
        pid = self.postmaster_pid()
        if pid is not None:  # not stopped: its postmaster.pid was stale, or the stop failed
            try:
                if os.readlink(f"/proc/{pid}/cwd") == os.path.realpath(self.script("datadir")):
                    os.kill(pid, signal.SIGQUIT)
            except OSError:
                pass
        shutil.rmtree(self.cluster_base(), ignore_errors=True)

    def assert_cluster_up(self) -> None:
        dsn = self.script("dsn", "postgres")
        with psycopg.connect(dsn, autocommit=True, connect_timeout=10) as c:
            assert c.execute("SELECT current_setting('port')::int").fetchone() == (self.port,)
            assert c.execute("SELECT count(*) FROM pg_database WHERE datname = 'tally'").fetchone() == (1,)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checkout]:
    co = Checkout(tmp_path_factory.mktemp("checkout"), free_port())
    try:
        yield co
    finally:
        co.remove_cluster()
        shutil.rmtree(co.root, ignore_errors=True)


def fresh_clone(co: Checkout) -> None:
    shutil.rmtree(co.venv, ignore_errors=True)


def client_changed(co: Checkout) -> None:
    """A venv made before the client's pyproject.toml changed (a pull): make deps installs the client again."""
    co.make("deps")
    with open(co.root / "python_client" / "pyproject.toml", "a") as f:
        f.write("# changed\n")


def venv_made_without_pip(co: Checkout) -> Callable[[int], bool]:
    # `python3 -m venv` has made .venv/bin/python and is installing pip (ensurepip): the window of the report
    return lambda sid: (co.venv / "bin" / "python").exists() and not (co.venv / "bin" / "pip").exists()


def requirements_half_installed(co: Checkout) -> Callable[[int], bool]:
    # pip is unpacking the pinned packages: a few are in site-packages (beyond pip and setuptools), most are not
    return lambda sid: len(co.site_packages()) >= 5


def client_being_installed(co: Checkout) -> Callable[[int], bool]:
    # the editable install of python_client (pip builds it in an isolated environment first)
    return lambda sid: runs(sid, "pip", "install", "python_client")


@pytest.mark.parametrize(
    ("prepare", "at", "sig", "after"),
    [
        (fresh_clone, venv_made_without_pip, signal.SIGINT, 0.0),
        (fresh_clone, requirements_half_installed, signal.SIGKILL, 0.0),
        (client_changed, client_being_installed, signal.SIGINT, 0.2),
    ],
    ids=["ctrl-c-venv-made-pip-not-yet", "kill-9-requirements-half-installed", "ctrl-c-client-install"],
)
def test_an_interrupted_make_deps_is_finished_by_running_it_again(
    checkout: Checkout,
    prepare: Callable[[Checkout], None],
    at: Callable[[Checkout], Callable[[int], bool]],
    sig: signal.Signals,
    after: float,
) -> None:
    co = checkout
    prepare(co)
    co.interrupt("deps", at(co), sig, after)
    assert co.venv.exists()  # left half-made

    co.make("deps")
    python = str(co.venv / "bin" / "python")
    for cmd in ([python, "-m", "pip", "--version"], [str(co.venv / "bin" / "pip"), "--version"]):
        rc, out = co.run(*cmd)
        assert rc == 0 and out.startswith("pip "), out
    assert (co.venv / ".tally-deps").is_file()
    rc, out = co.run(python, "-I", "-c", "import tally, alembic, psycopg; print(tally.__file__)")
    assert rc == 0, out
    assert Path(out.strip()).is_relative_to(co.root / "python_client"), out
    rc, out = co.run(python, "-m", "pip", "check")
    assert rc == 0, out

    started = time.monotonic()
    out = co.make("deps")  # done: nothing more to do
    assert time.monotonic() - started < 10
    assert "tally deps" not in out, out


def initdb_started(co: Checkout) -> Callable[[int], bool]:
    return lambda sid: runs(sid, "initdb")


def initdb_bootstrapping(co: Checkout) -> Callable[[int], bool]:
    # initdb has written PG_VERSION and runs the bootstrap backend
    return lambda sid: runs(sid, "postgres", "--boot")


def initdb_setting_up(co: Checkout) -> Callable[[int], bool]:
    # later: template1 bootstrapped, the catalogs being filled in single-user mode
    return lambda sid: runs(sid, "postgres", "--single")


def postmaster_starting(co: Checkout) -> Callable[[int], bool]:
    return lambda sid: runs(sid, "pg_ctl", "start")


@pytest.mark.parametrize(
    ("at", "sig", "after"),
    [
        (initdb_started, signal.SIGINT, 0.0),
        (initdb_bootstrapping, signal.SIGKILL, 0.0),
        (initdb_setting_up, signal.SIGKILL, 0.0),
        (postmaster_starting, signal.SIGINT, 0.0),
    ],
    ids=["ctrl-c-initdb-at-once", "kill-9-initdb-bootstrap", "kill-9-initdb-single-user", "ctrl-c-pg-ctl-start"],
)
def test_an_interrupted_make_db_is_finished_by_running_it_again(
    checkout: Checkout, at: Callable[[Checkout], Callable[[int], bool]], sig: signal.Signals, after: float
) -> None:
    co = checkout
    co.make("deps")
    co.remove_cluster()
    co.interrupt("db", at(co), sig, after)
    co.make("db")
    co.assert_cluster_up()


@pytest.mark.parametrize("left", ["empty", "initdb-killed-after-PG_VERSION"])
def test_make_db_makes_again_a_data_directory_an_older_set_up_left_half_made(checkout: Checkout, left: str) -> None:
    """An older db.sh ran initdb in place: interrupted, it left a data
    directory without PG_VERSION, or with PG_VERSION and little else."""
    co = checkout
    co.make("deps")
    co.remove_cluster()
    data = co.script("datadir")
    subprocess.run(["runuser", "-u", "postgres", "--", "mkdir", "-p", data], check=True)
    if left == "initdb-killed-after-PG_VERSION":
        initdb = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", str(PGBIN / "initdb"), "-D", data, "-U", "postgres"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not Path(data, "PG_VERSION").exists():
            assert initdb.poll() is None and time.monotonic() < deadline, "initdb ended before writing PG_VERSION"
            time.sleep(0.005)
        os.killpg(initdb.pid, signal.SIGKILL)
        initdb.wait()
        assert not Path(data, "global", "pg_control").exists()
    co.make("db")
    co.assert_cluster_up()


@pytest.mark.parametrize("pid_now", ["gone", "another-process-of-postgres"])
def test_make_db_starts_a_cluster_whose_postmaster_was_killed(checkout: Checkout, pid_now: str) -> None:
    """A killed postmaster (or a machine that stopped) leaves postmaster.pid
    and its socket's lock file behind; after a restart their pid may be
    another live process of the postgres user, which PostgreSQL takes for a
    postmaster still running."""
    co = checkout
    co.make("db")
    old = co.postmaster_pid()
    co.kill_postmaster()
    data = Path(co.script("datadir"))
    sleeper = None
    try:
        if pid_now == "another-process-of-postgres":
            sleeper = subprocess.Popen(["runuser", "-u", "postgres", "--", "sleep", "300"], start_new_session=True)
            deadline = time.monotonic() + 10
            while not (pids := [p for p in session_pids(sleeper.pid) if cmdline(p).startswith("sleep")]):
                assert time.monotonic() < deadline
                time.sleep(0.01)
            reused = str(pids[0])
            for lock in [data / "postmaster.pid", *(co.cluster_base() / "run").glob(".s.PGSQL.*.lock")]:
                lines = lock.read_text().split("\n")
                assert lines[0] == str(old)
                lock.write_text("\n".join([reused, *lines[1:]]))
        assert (data / "postmaster.pid").exists()
        co.make("db")
        co.assert_cluster_up()
        if sleeper is not None:
            assert sleeper.poll() is None  # and that process was left alone
        co.make("db-stop")
        assert co.postmaster_pid() is None
        if sleeper is not None:
            assert sleeper.poll() is None
    finally:
        if sleeper is not None:
            os.killpg(sleeper.pid, signal.SIGKILL)
            sleeper.wait()


def test_make_demo_runs_in_the_repaired_checkout(checkout: Checkout) -> None:
    out = checkout.make("demo")
    assert "increments written" in out and "health (tally.health)" in out, out[-4000:]
    assert "critical" not in out, out[-4000:]
