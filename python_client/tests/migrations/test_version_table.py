"""tally's own version table: tally.alembic_version. tally installs beside an
application that uses alembic (public.alembic_version) without touching it,
carries installs made with the version table in public over, and
`downgrade base` leaves nothing behind; `alembic -c <repo>/alembic.ini`
works from any directory."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import psycopg
import pytest
from conftest import REPO
from test_migrations import smoke, snapshot
from test_migrations_code import REVISIONS, Databases, catalog, run_alembic

HEAD = REVISIONS[-1]
APP_REVISION = "a1b2c3d4e5f6"
# The last commit where tally's revision lived in public.alembic_version.
LEGACY_COMMIT = "806ba9b"


@pytest.fixture
def databases(admin_dsn: str, request: pytest.FixtureRequest):
    dbs = Databases(admin_dsn, "tally_mv_" + request.node.name.split("[")[0].removeprefix("test_")[:30])
    yield dbs
    dbs.drop()


def versions(dsn: str) -> dict[str, list[str]]:
    """Every table named alembic_version, with its rows."""
    with psycopg.connect(dsn) as c:
        tables = [
            r[0]
            for r in c.execute(
                "SELECT c.relnamespace::regnamespace || '.' || c.relname FROM pg_class AS c"
                " WHERE c.relname = 'alembic_version' AND c.relkind = 'r' ORDER BY 1"
            )
        ]
        return {t: [r[0] for r in c.execute(f"SELECT version_num FROM {t} ORDER BY 1")] for t in tables}


def add_application(dsn: str, rows: tuple[str, ...] = (APP_REVISION,)) -> None:
    """An application that uses alembic: its version table (alembic's shape)
    and a table of its own."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "CREATE TABLE IF NOT EXISTS public.alembic_version (version_num VARCHAR(32) NOT NULL,"
            " CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
        )
        for row in rows:
            c.execute("INSERT INTO public.alembic_version VALUES (%s)", (row,))
        c.execute("CREATE TABLE public.orders (id integer PRIMARY KEY, total bigint NOT NULL)")
        c.execute("INSERT INTO public.orders VALUES (1, 100), (2, 250)")


def orders(dsn: str) -> list[tuple[int, int]]:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT id, total FROM public.orders ORDER BY id").fetchall()


def test_installs_beside_an_application_that_uses_alembic(databases: Databases, tmp_path: Path) -> None:
    """Run from another directory, with a relative -c path."""
    db = databases.new()
    add_application(db)
    before = snapshot(db)
    ini = Path(os.path.relpath(REPO / "alembic.ini", tmp_path))
    assert not ini.is_absolute()

    run_alembic(db, "upgrade", "head", ini=ini, cwd=tmp_path)
    assert versions(db) == {"public.alembic_version": [APP_REVISION], "tally.alembic_version": [HEAD]}
    assert smoke(db) == 42
    assert orders(db) == [(1, 100), (2, 250)]

    run_alembic(db, "downgrade", "base", ini=ini, cwd=tmp_path)
    assert versions(db) == {"public.alembic_version": [APP_REVISION]}
    assert snapshot(db) == before
    assert orders(db) == [(1, 100), (2, 250)]


def test_downgrade_base_leaves_no_schema_and_no_version_table(databases: Databases) -> None:
    db = databases.new()
    before = snapshot(db)
    for target in REVISIONS:
        run_alembic(db, "upgrade", target)
        assert versions(db) == {"tally.alembic_version": [target]}
    run_alembic(db, "downgrade", "base")
    assert versions(db) == {}
    assert snapshot(db) == before
    with psycopg.connect(db) as c:
        assert c.execute("SELECT to_regnamespace('tally')").fetchone()[0] is None


def test_alembic_current_on_an_empty_database_changes_nothing(databases: Databases) -> None:
    db = databases.new()
    before = snapshot(db)
    run_alembic(db, "current")
    assert snapshot(db) == before


def test_a_schema_tally_of_someone_else_is_refused_and_left_alone(databases: Databases) -> None:
    db = databases.new()
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("CREATE SCHEMA tally")
        c.execute("CREATE TABLE tally.mine (x integer)")
    before = snapshot(db)
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "alembic"), "-c", str(REPO / "alembic.ini"), "upgrade", "head"],
        env={**os.environ, "TALLY_DSN": db},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    assert 'schema "tally" already exists' in done.stderr
    assert snapshot(db) == before


def test_an_application_revision_named_like_tallys_is_not_taken(databases: Databases) -> None:
    """No schema tally: a row '0001' in public.alembic_version is the
    application's own, and stays."""
    db = databases.new()
    add_application(db, rows=("0001",))
    run_alembic(db, "upgrade", "head")
    assert versions(db) == {"public.alembic_version": ["0001"], "tally.alembic_version": [HEAD]}
    run_alembic(db, "downgrade", "base")
    assert versions(db) == {"public.alembic_version": ["0001"]}


@pytest.fixture(scope="module")
def legacy_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository at the last commit that kept tally's revision in
    public.alembic_version."""
    git = ["git", "-C", str(REPO)]
    if subprocess.run([*git, "cat-file", "-e", f"{LEGACY_COMMIT}^{{commit}}"], capture_output=True).returncode:
        pytest.skip(f"commit {LEGACY_COMMIT} is not in this clone")
    tree = tmp_path_factory.mktemp("legacy")
    data = subprocess.run([*git, "archive", "--format=tar", LEGACY_COMMIT], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(tree, filter="data")
    return tree


@pytest.mark.parametrize(
    ("legacy", "app_row"),
    [("0001", False), ("0002", False), ("0002", True)],
    ids=["0001", "0002", "0002-beside-an-application-row"],
)
def test_an_install_with_the_version_in_public_is_carried_over(
    databases: Databases, legacy_tree: Path, legacy: str, app_row: bool
) -> None:
    """Installed by the old layout (up to `legacy`), then upgraded by this one:
    the row moves to tally.alembic_version, public.alembic_version goes
    unless another row (an application's) is in it, and the install is then
    exactly a fresh one: it upgrades, downgrades to base and leaves nothing."""
    fresh = databases.new()
    empty = snapshot(fresh)
    run_alembic(fresh, "upgrade", "head")

    db = databases.new()
    run_alembic(db, "upgrade", legacy, ini=legacy_tree / "alembic.ini")
    assert versions(db) == {"public.alembic_version": [legacy]}
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("SELECT tally.create_counter('carried', '{hour}')")
        c.execute("SELECT tally.increment_counter('carried', 'k', 7)")
    app = [APP_REVISION] if app_row else []
    if app_row:
        with psycopg.connect(db, autocommit=True) as c:
            c.execute("INSERT INTO public.alembic_version VALUES (%s)", (APP_REVISION,))

    log = run_alembic(db, "current")
    kept = "kept (it holds other rows)" if app_row else "dropped (now empty)"
    assert f"tally: moved revision {legacy} from public.alembic_version to tally.alembic_version;" in log
    assert f"public.alembic_version {kept}" in log
    assert versions(db) == {"tally.alembic_version": [legacy], **({"public.alembic_version": app} if app else {})}

    run_alembic(db, "upgrade", "head")
    assert "tally: moved" not in run_alembic(db, "current")
    assert versions(db) == {"tally.alembic_version": [HEAD], **({"public.alembic_version": app} if app else {})}
    assert catalog(db) == catalog(fresh)
    with psycopg.connect(db, autocommit=True) as c:
        assert c.execute("SELECT tally.counter_value('carried', 'k')").fetchone()[0] == 7

    run_alembic(db, "downgrade", "base")
    assert versions(db) == ({"public.alembic_version": app} if app else {})
    if not app_row:
        assert snapshot(db) == empty
    run_alembic(db, "upgrade", "head")
    assert smoke(db) == 42
