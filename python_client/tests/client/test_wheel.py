"""The client as a user gets it: the wheel built from python_client/,
installed into a fresh virtualenv outside the checkout, run from a directory
outside it: `tally --help`, `migrate` (from the migrations the wheel ships),
`status`, `metrics`, `compact` and `migrate base` against a fresh database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg.conninfo import make_conninfo

REPO = Path(__file__).resolve().parents[3]
SCHEMA = ("alembic.ini", "migrations", "sql", "plpython")  # what the wheel ships under tally/_schema/


def pins(*names: str) -> list[str]:
    """The requirements.txt lines of these distributions (the versions the project tests with)."""
    lines = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()]
    found = {re.split(r"[\[=]", line, maxsplit=1)[0].lower(): line for line in lines if "==" in line}
    return [found[n.lower()] for n in names]


def run(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    r = run(REPO / ".venv" / "bin" / "pip", "wheel", "-q", "--no-deps", "-w", out, REPO / "python_client", cwd=out)
    assert r.returncode == 0, r.stderr[-3000:]
    (whl,) = out.glob("tally-*.whl")
    return whl


def schema_files() -> dict[str, bytes]:
    """The repository's files the wheel must ship, by their path inside tally/_schema/."""
    files = {"alembic.ini": (REPO / "alembic.ini").read_bytes()}
    for top in SCHEMA[1:]:
        for f in sorted((REPO / top).rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts:
                files[str(f.relative_to(REPO))] = f.read_bytes()
    return files


def test_the_wheel_is_the_client_and_the_schema_without_the_benchmarks(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if not n.startswith("tally-0")]
        modules = sorted(n for n in names if not n.startswith("tally/_schema/"))
        assert modules == [
            "tally/__init__.py",
            "tally/_coalescer.py",
            "tally/_coalescer_async.py",
            "tally/_concurrency.py",
            "tally/_router.py",
            "tally/_router_async.py",
            "tally/_sql.py",
            "tally/aio.py",
            "tally/cli.py",
            "tally/client.py",
            "tally/coalesce.py",
            "tally/compactor.py",
            "tally/connect.py",
            "tally/demo.py",
            "tally/metrics.py",
            "tally/progress.py",
            "tally/routing.py",
        ]
        shipped = {n.removeprefix("tally/_schema/"): z.read(n) for n in names if n.startswith("tally/_schema/")}
    expected = schema_files()
    assert sorted(shipped) == sorted(expected)
    assert "migrations/tally_code.py" in shipped and "plpython/compact.py" in shipped
    for name, data in expected.items():
        assert shipped[name] == data, name


@pytest.fixture
def fresh_db(admin_dsn: str) -> Iterator[str]:
    """An empty database (not migrated), dropped afterwards."""
    name = f"tally_wheel_{os.getpid()}"
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield make_conninfo(admin_dsn, dbname=name)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_tally_runs_from_the_wheel_in_a_clean_venv(
    wheel: Path, fresh_db: str, dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("installed")
    assert REPO not in root.resolve().parents
    venv, elsewhere = root / "venv", root / "cwd"
    elsewhere.mkdir()
    r = run(sys.executable, "-m", "venv", venv, cwd=root)
    assert r.returncode == 0, r.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check"]

    def tally(*args: str) -> subprocess.CompletedProcess:
        return run(venv / "bin" / "tally", *args, cwd=elsewhere, env=env)

    # the client alone: psycopg, no alembic
    r = run(*pip, wheel, *pins("psycopg", "psycopg-pool"), cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    r = tally("--help")
    assert r.returncode == 0, r.stderr
    commands = re.search(r"\{([a-z,]+)\}", r.stdout).group(1).split(",")
    assert commands == ["migrate", "compact", "status", "metrics", "demo"]
    r = run(
        venv / "bin" / "python", "-c", "import importlib.util as u; print(u.find_spec('tally.bench'))", cwd=elsewhere
    )
    assert r.stdout.strip() == "None", r.stdout + r.stderr
    r = tally("--dsn", fresh_db, "migrate")
    assert r.returncode == 1
    assert "tally migrate: alembic is not installed" in r.stderr and "pip install 'tally[migrate]'" in r.stderr

    # with alembic: the migrations come from the installed package, not from this checkout
    r = run(*pip, *pins("alembic", "SQLAlchemy"), cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    r = run(venv / "bin" / "python", "-c", "from tally.cli import alembic_ini; print(alembic_ini())", cwd=elsewhere)
    ini = Path(r.stdout.strip())
    assert ini.name == "alembic.ini" and ini.parent.name == "_schema" and venv.resolve() in ini.resolve().parents
    r = tally("--dsn", fresh_db, "migrate")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert r.stdout.strip() == "tally: migrated to head"

    head = ScriptDirectory.from_config(Config(str(REPO / "alembic.ini"))).get_current_head()
    functions = (
        "SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text)"
        " FROM pg_proc AS p WHERE p.pronamespace = 'tally'::regnamespace"
    )
    with psycopg.connect(fresh_db, autocommit=True) as conn, psycopg.connect(dsn, autocommit=True) as reference:
        assert conn.execute("SELECT version_num FROM tally.alembic_version").fetchall() == [(head,)]
        # the same code as a database migrated from the checkout
        assert conn.execute(functions).fetchone() == reference.execute(functions).fetchone()
        conn.execute("SELECT tally.create_counter('wheel_views')")
        conn.execute("SELECT tally.increment_counters('{wheel_views,wheel_views}', '{k,k}', '{2,5}')")

        r = tally("--dsn", fresh_db, "status")
        assert r.returncode == 0, r.stdout + r.stderr
        views = next(line.split() for line in r.stdout.splitlines() if line.startswith("wheel_views"))
        assert views[:4] == ["wheel_views", "fast", "minute,hour,day,week,month", "2"]

        r = tally("--dsn", fresh_db, "metrics")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert any(line.startswith("tally_counters{") and line.endswith(" 1.0") for line in lines), lines
        assert "# TYPE tally_pending_deltas gauge" in lines
        assert sum(float(x.split()[-1]) for x in lines if x.startswith("tally_pending_deltas{")) == 2.0

        r = tally("--dsn", fresh_db, "compact")
        assert r.returncode == 0, r.stderr
        assert conn.execute("SELECT tally._pending()").fetchone() == (0,)
        assert conn.execute("SELECT tally.counter_value('wheel_views', 'k')").fetchone() == (7,)

    r = tally("--dsn", fresh_db, "migrate", "base")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert conn.execute("SELECT to_regnamespace('tally')").fetchone() == (None,)
