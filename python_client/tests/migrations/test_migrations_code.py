"""Code lives once: sql/ holds the head's code, migrations/code/<rev>/ only
what an older revision had differently. Every revision installs exactly its
own code, whether reached by upgrading or by downgrading from the head, and
a new revision that changes code is one command (scripts/freeze_code.py)."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from conftest import REPO
from psycopg.conninfo import conninfo_to_dict, make_conninfo

sys.path.insert(0, str(REPO / "migrations"))

import tally_code

REVISIONS = tally_code.WORKTREE.revisions()
ALEMBIC = str(REPO / ".venv" / "bin" / "alembic")
PYTHON = str(REPO / ".venv" / "bin" / "python")

# Everything in schema tally a migration decides, as text: routines with
# their full definitions, relations (views with their definitions, tables,
# partitions, indexes, sequences) with options, ACLs and comments, columns,
# constraints, triggers, types, the schema itself, default privileges.
# ACLs are the privileges in effect: PostgreSQL stores an object's default
# privileges as NULL until a GRANT or REVOKE touches it, and 0002's downgrade
# REVOKEs from tally's roles, which spells the same default out.
CATALOG = r"""
SELECT 'schema owner=' || n.nspowner::regrole || ' acl=' || coalesce(n.nspacl, acldefault('n', n.nspowner))::text
       || ' comment=' || coalesce(obj_description(n.oid, 'pg_namespace'), '-')
FROM pg_namespace AS n WHERE n.nspname = 'tally'
UNION ALL
SELECT 'routine ' || p.oid::regprocedure || ' owner=' || p.proowner::regrole
       || ' acl=' || coalesce(p.proacl, acldefault('f', p.proowner))::text
       || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '-') || E'\n' || pg_get_functiondef(p.oid)
FROM pg_proc AS p WHERE p.pronamespace = 'tally'::regnamespace
UNION ALL
SELECT 'relation ' || c.relname || ' kind=' || c.relkind::text || ' persistence=' || c.relpersistence::text
       || ' owner=' || c.relowner::regrole || ' options=' || coalesce(c.reloptions::text, '-')
       || ' acl=' || coalesce(c.relacl::text, CASE WHEN c.relkind IN ('r', 'p', 'v', 'm', 'f')
                                   THEN acldefault('r', c.relowner)::text
                                   WHEN c.relkind = 'S' THEN acldefault('s', c.relowner)::text ELSE '-' END)
       || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '-')
       || ' partkey=' || coalesce(pg_get_partkeydef(c.oid), '-')
       || ' bound=' || coalesce(pg_get_expr(c.relpartbound, c.oid), '-')
       || ' parent=' || coalesce((SELECT string_agg(i.inhparent::regclass::text, ',') FROM pg_inherits AS i
                                  WHERE i.inhrelid = c.oid), '-')
       || CASE WHEN c.relkind IN ('v', 'm') THEN E'\n' || pg_get_viewdef(c.oid) ELSE '' END
FROM pg_class AS c WHERE c.relnamespace = 'tally'::regnamespace
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || ' notnull=' || a.attnotnull || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
       || ' identity=' || a.attidentity::text || ' generated=' || a.attgenerated::text
       || ' acl=' || coalesce(a.attacl::text, '-') || ' comment=' || coalesce(col_description(c.oid, a.attnum), '-')
FROM pg_attribute AS a
JOIN pg_class AS c ON c.oid = a.attrelid
LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = 'tally'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'constraint ' || r.conrelid::regclass || ' ' || r.conname || ' ' || pg_get_constraintdef(r.oid)
       || ' comment=' || coalesce(obj_description(r.oid, 'pg_constraint'), '-')
FROM pg_constraint AS r WHERE r.connamespace = 'tally'::regnamespace
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid WHERE c.relnamespace = 'tally'::regnamespace
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid)
FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid
WHERE c.relnamespace = 'tally'::regnamespace AND NOT t.tgisinternal
UNION ALL
SELECT 'type ' || t.typname || ' ' || t.typtype::text || ' comment=' || coalesce(obj_description(t.oid, 'pg_type'), '-')
FROM pg_type AS t WHERE t.typnamespace = 'tally'::regnamespace
UNION ALL
SELECT 'default acl ' || d.defaclrole::regrole || ' ' || d.defaclobjtype::text || ' ' || d.defaclacl::text
FROM pg_default_acl AS d WHERE d.defaclnamespace = 'tally'::regnamespace
UNION ALL
SELECT 'extension ' || e.extname || ' in ' || e.extnamespace::regnamespace FROM pg_extension AS e
ORDER BY 1
"""
PARTMAN = "SELECT 'partman ' || row(c.*)::text FROM partman.part_config AS c ORDER BY 1"


def catalog(dsn: str) -> list[str]:
    """The catalog of schema tally (see CATALOG), and pg_partman's part_config."""
    with psycopg.connect(dsn) as c:
        rows = [r[0] for r in c.execute(CATALOG)]
        if c.execute("SELECT to_regclass('partman.part_config') IS NOT NULL").fetchone()[0]:
            rows += [r[0] for r in c.execute(PARTMAN)]
        return rows


def run_alembic(dsn: str, *args: str, ini: Path = REPO / "alembic.ini", cwd: Path | None = None) -> str:
    """alembic with `ini`, run from `cwd`; its stderr, or the failure with it."""
    done = subprocess.run(
        [ALEMBIC, "-c", str(ini), *args],
        env={**os.environ, "TALLY_DSN": dsn},
        capture_output=True,
        text=True,
        cwd=cwd,
    )
    assert done.returncode == 0, f"alembic {' '.join(args)} failed:\n{done.stderr}"
    return done.stderr


class Databases:
    """Fresh databases for one test, dropped afterwards."""

    def __init__(self, admin_dsn: str, prefix: str) -> None:
        self.admin_dsn = admin_dsn
        self.prefix = prefix
        self.made: list[str] = []

    def new(self) -> str:
        name = f"{self.prefix}_{len(self.made)}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            c.execute(f"CREATE DATABASE {name}")
        self.made.append(name)
        return make_conninfo(**{**conninfo_to_dict(self.admin_dsn), "dbname": name})

    def drop(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            for name in self.made:
                c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def databases(admin_dsn: str, request: pytest.FixtureRequest):
    dbs = Databases(admin_dsn, "tally_mig_" + request.node.name.split("[")[0].removeprefix("test_")[:30])
    yield dbs
    dbs.drop()


# ------------------------------------------------------------ no copies


def test_no_file_under_migrations_copies_sql_or_plpython() -> None:
    sources = {p.read_bytes(): p for d in ("sql", "plpython") for p in (REPO / d).rglob("*") if p.is_file()}
    copies = [
        f"{p.relative_to(REPO)} = {sources[p.read_bytes()].relative_to(REPO)}"
        for p in (REPO / "migrations").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.read_bytes() in sources
    ]
    assert copies == []


def test_a_delta_holds_only_what_differs_from_the_next_revision() -> None:
    for rev, nxt in itertools.pairwise(REVISIONS):
        here, after = tally_code.code_at(rev), tally_code.code_at(nxt)
        kept = sorted(p.name for p in (tally_code.CODE_DIR / rev).glob("*.sql"))
        assert kept == sorted(name for name in here if after.get(name) != here[name]), rev
        absent, _ = tally_code.read_manifest(tally_code.CODE_DIR / rev / tally_code.MANIFEST)
        assert sorted(absent) == sorted(set(after) - set(here)), rev


def test_0001_is_the_code_it_shipped_with() -> None:
    """The code of 0001 rebuilt from sql/ and its delta is, file for file,
    the full copy 0001 shipped with (migrations/code/0001/ at 806ba9b)."""
    git = ["git", "-C", str(REPO)]
    if subprocess.run([*git, "cat-file", "-e", "806ba9b^{commit}"], capture_output=True).returncode:
        pytest.skip("commit 806ba9b is not in this clone")
    listing = subprocess.run(
        [*git, "ls-tree", "-r", "--name-only", "806ba9b", "migrations/code/0001"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    shipped = {
        Path(path).name: subprocess.run(
            [*git, "show", f"806ba9b:{path}"], check=True, capture_output=True, text=True
        ).stdout.rstrip("\n")
        + "\n"
        for path in listing
    }
    assert len(shipped) == 55
    assert tally_code.code_at("0001") == shipped


def test_a_stale_delta_is_refused(tmp_path: Path) -> None:
    """sql/ changed under an existing delta: the code of the older revision
    would silently change, so code_at refuses with what to run."""
    tree = copy_tree(tmp_path / "repo")
    before = REVISIONS[-2]
    kept = {p.name for p in (tree.code_dir / before).glob("*.sql")}
    path = next(p for n, p in tree.code_files().items() if n.startswith("tally.") and n not in kept)
    path.write_text(path.read_text().replace("$$", "$$\n-- changed", 1))
    with pytest.raises(
        RuntimeError, match=rf"code of revision {before} does not reconstruct.*freeze_code\.py {before} --ref"
    ):
        tree.code_at(before)
    path.write_text(path.read_text().replace("$$\n-- changed", "$$", 1))
    assert tree.code_at(before) == tally_code.code_at(before)


def test_apply_order_follows_what_bound_objects_name() -> None:
    code = {
        "tally.a_view.sql": "CREATE VIEW tally.a_view AS SELECT tally.m_sql() AS x;\n",
        "tally.m_sql.sql": "CREATE FUNCTION tally.m_sql() RETURNS int LANGUAGE sql RETURN tally.z_plpgsql();\n",
        "tally.z_plpgsql.sql": "CREATE FUNCTION tally.z_plpgsql() RETURNS int LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN tally.a_view_count(); END $$;\n",
        "tally.a_view_count.sql": "CREATE FUNCTION tally.a_view_count() RETURNS int LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN (SELECT count(*) FROM tally.a_view); END $$;\n",
        "grants.sql": "GRANT USAGE ON SCHEMA tally TO tally_reader;\n",
    }
    assert tally_code.apply_order(code) == [
        "tally.a_view_count.sql",
        "tally.z_plpgsql.sql",
        "tally.m_sql.sql",
        "tally.a_view.sql",
        "grants.sql",
    ]
    # a name in a comment or a string literal is no reference
    hinted = {
        "tally.a_view.sql": "-- cleared by tally.b_fn\nCREATE VIEW tally.a_view AS SELECT 'tally.b_fn()' AS hint;\n",
        "tally.b_fn.sql": "-- counts what tally.a_view shows\n"
        "CREATE FUNCTION tally.b_fn() RETURNS bigint LANGUAGE sql RETURN (SELECT count(*) FROM tally.a_view);\n"
        "COMMENT ON FUNCTION tally.b_fn() IS 'tally.a_view''s rows';\n",
    }
    assert tally_code.apply_order(hinted) == ["tally.a_view.sql", "tally.b_fn.sql"]
    code["tally.z_plpgsql.sql"] = "CREATE VIEW tally.z_plpgsql AS SELECT tally.a_view.x FROM tally.a_view;\n"
    with pytest.raises(RuntimeError, match=r"tally: the code of a_view, m_sql, z_plpgsql refers to itself in a circle"):
        tally_code.apply_order(code)


# ------------------------------------------------------------ exactness


@pytest.mark.parametrize("revision", REVISIONS)
def test_upgrading_to_a_revision_equals_downgrading_to_it_from_the_head(databases: Databases, revision: str) -> None:
    up = databases.new()
    run_alembic(up, "upgrade", revision)
    down = databases.new()
    run_alembic(down, "upgrade", "head")
    at_head = catalog(down)
    run_alembic(down, "downgrade", revision)
    reached = catalog(up)
    assert any(line.startswith("routine tally.counter_value(") for line in reached)
    assert catalog(down) == reached
    assert (reached == at_head) == (revision == REVISIONS[-1])


# ------------------------------------------------------------ a new revision


def copy_tree(into: Path) -> tally_code.Tree:
    """The repository's migrations, code and tool in `into`, committed to a
    new git repository there."""
    for part in ("sql", "plpython", "migrations"):
        shutil.copytree(REPO / part, into / part, ignore=shutil.ignore_patterns("__pycache__"))
    (into / "scripts").mkdir()
    shutil.copy2(REPO / "scripts" / "freeze_code.py", into / "scripts")
    shutil.copy2(REPO / "alembic.ini", into)
    git(into, "init", "-q")
    git(into, "add", "-A")
    git(into, "commit", "-qm", "0002 is the head")
    return tally_code.Tree(into)


def git(where: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=tally", "-c", "user.email=tally@localhost", "-C", str(where), *args],
        check=True,
        capture_output=True,
    )


HEAD = REVISIONS[-1]
NEW = f"{int(HEAD) + 1:04d}"
NEW_REVISION = f'''"""A code-only revision.

Revision ID: {NEW}
Revises: {HEAD}
Create Date: 2026-12-01
"""

from __future__ import annotations

import tally_code

revision = "{NEW}"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    grants = tally_code.granted()
    tally_code.drop_code("{HEAD}")
    tally_code.apply_code()
    tally_code.regrant(grants)


def downgrade() -> None:
    grants = tally_code.granted()
    tally_code.drop_code()
    tally_code.apply_code("{HEAD}")
    tally_code.regrant(grants)
'''


def test_a_new_revision_is_one_command(databases: Databases, tmp_path: Path) -> None:
    """In a copy of the repository, a new revision after the head changes
    counter_value, drops set_event_window (and its grant), adds a view and
    the function it calls (the view sorts first by name, the index applies
    it after), and files move to another folder of sql/ with their index
    lines. `scripts/freeze_code.py <head>
    --ref HEAD` is all it takes: the old head keeps installing the code it
    shipped with, whether
    upgraded to (its apply_code() is its own code, not the new head's) or
    downgraded to from the new revision."""
    repo = tmp_path / "repo"
    files = copy_tree(repo).code_files()
    sql = repo / "sql"
    index = sql / "index.sql"
    order = index.read_text()

    def moved(name: str, folder: str) -> Path:
        """Move a code file to another folder of sql/, and its index line with it."""
        nonlocal order
        old = files[name]
        new = sql / folder / name
        new.parent.mkdir(exist_ok=True)
        old.rename(new)
        order = order.replace(f"\\ir {old.relative_to(sql)}\n", f"\\ir {new.relative_to(sql)}\n")
        return new

    moved("tally.top_keys.sql", "answers")
    value = moved("tally.counter_value.sql", "answers")
    value.write_text(value.read_text().replace("AS $$\n", f"AS $$\n-- revision {NEW}\n", 1))
    order = order.replace(f"\\ir {files['tally.set_event_window.sql'].relative_to(sql)}\n", "")
    files["tally.set_event_window.sql"].unlink()
    grants = sql / "grants.sql"
    assert " 'set_event_window'," in grants.read_text()
    grants.write_text(grants.read_text().replace(" 'set_event_window',", ""))
    (sql / "answers" / "tally.zz_answer.sql").write_text(
        "CREATE FUNCTION tally.zz_answer() RETURNS integer LANGUAGE sql IMMUTABLE RETURN 42;\n"
    )
    (sql / "answers" / "tally.aa_answer.sql").write_text(
        "CREATE VIEW tally.aa_answer AS SELECT tally.zz_answer() AS answer;\n"
    )
    # the index lists the new objects, the view after the function it calls
    order = order.replace(
        "\\ir grants.sql", "\\ir answers/tally.zz_answer.sql\n\\ir answers/tally.aa_answer.sql\n\\ir grants.sql"
    )
    index.write_text(order)
    (repo / "migrations" / "versions" / f"{NEW}_code_only.py").write_text(NEW_REVISION)

    done = subprocess.run(
        [PYTHON, str(repo / "scripts" / "freeze_code.py"), HEAD, "--ref", "HEAD"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"migrations/code/{HEAD}: 3 objects of {HEAD} kept (1 of them dropped by {NEW}), 2 added by {NEW};"
        f" {len(files) - 3} identical to sql/ not copied"
    )
    delta = repo / "migrations" / "code" / HEAD
    assert sorted(p.name for p in delta.iterdir()) == [
        "grants.sql",
        "manifest",
        "tally.counter_value.sql",
        "tally.set_event_window.sql",
    ]
    assert tally_code.read_manifest(delta / "manifest")[0] == ["tally.aa_answer.sql", "tally.zz_answer.sql"]
    assert (delta / "tally.counter_value.sql").read_text() == tally_code.code_at(HEAD)["tally.counter_value.sql"]
    ini = repo / "alembic.ini"

    shipped = databases.new()  # the head from the repository itself
    run_alembic(shipped, "upgrade", HEAD)
    want = catalog(shipped)

    up = databases.new()
    run_alembic(up, "upgrade", HEAD, ini=ini)
    assert catalog(up) == want
    run_alembic(up, "upgrade", "head", ini=ini)
    at_new = catalog(up)
    assert any(f"-- revision {NEW}" in line for line in at_new)
    assert not any(line.startswith("routine tally.set_event_window(") for line in at_new)
    with psycopg.connect(up) as c:
        assert c.execute("SELECT answer FROM tally.aa_answer").fetchone()[0] == 42

    down = databases.new()
    run_alembic(down, "upgrade", "head", ini=ini)
    assert catalog(down) == at_new
    run_alembic(down, "downgrade", HEAD, ini=ini)
    # State, not code: grants.sql gives tally_admin SELECT "ON ALL TABLES"; in
    # a fresh install the event-id partitions of today are made after it
    # ran, and get the parent's privileges when a later revision runs it again.
    parent_acl = re.search(r" acl=(\S+) ", next(x for x in want if x.startswith("relation event_ids kind="))).group(1)
    regranted = [
        re.sub(r" acl=\S+ ", f" acl={parent_acl} ", line, count=1)
        if line.startswith("relation event_ids_p") and " kind=r " in line
        else line
        for line in want
    ]
    assert catalog(down) == regranted
    for older in reversed(REVISIONS[:-1]):
        run_alembic(down, "downgrade", older, ini=ini)
        fresh = databases.new()
        run_alembic(fresh, "upgrade", older)
        assert catalog(down) == catalog(fresh)
