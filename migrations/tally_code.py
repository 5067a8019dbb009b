"""Helpers shared by tally's alembic revisions and env.py.

State (tables, partitions, data) lives in the numbered revisions; code
(functions, procedures, views, grants) lives once, in sql/ and plpython/, and
is (re)applied by `apply_code()`.

Code: one object per file, `tally.<name>.sql` anywhere under sql/ (its
identity is the file name, not the folder), plus `sql/grants.sql`. Where a
distributed install (Citus) needs another body for the same object, it sits
beside it as `tally.<name>.citus.sql`, with the same signature: each mode
reads one story, and `apply_code()` installs the body of the install's mode
(tally.settings.distributed), never both. sql/ holds
the code of the head revision. An older revision K is described by a reverse
delta, migrations/code/K/: the objects whose version at K differs from their
version at the next revision, as applied (`#include plpython/x.py` expanded),
and a manifest naming the objects the next revision added (absent at K) and the
sha256 of K's whole code. `code_at(K)` starts from sql/ and overlays the
deltas from the head down to K; the digest proves the result is K's code as it
shipped (scripts/freeze_code.py writes a delta when a revision is added).

Version table: tally keeps its own, tally.alembic_version, so it installs
into a database whose application uses alembic in public.alembic_version.
See `before_migrations()`.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import sys
from functools import cache
from pathlib import Path

import psycopg
from alembic import op

MIGRATIONS = Path(__file__).resolve().parent
ROOT = MIGRATIONS.parent
SQL_DIR = ROOT / "sql"
CODE_DIR = MIGRATIONS / "code"
GRANTS = "grants.sql"
MANIFEST = "manifest"
INDEX = "index.sql"
INDEX_LINE = re.compile(r"^\\ir\s+(\S+)\s*$", re.MULTILINE)
# The distributed install's body of an object: tally.<name>.citus.sql.
CITUS = ".citus"
INCLUDE = re.compile(r"^#include (\S+)\s*$", re.MULTILINE)

VERSION_SCHEMA = "tally"
VERSION_TABLE = "alembic_version"
# Revisions that were installed with the version table in public (before
# tally kept its own): carried over by before_migrations().
LEGACY_REVISIONS = ("0001", "0002")


def raw():
    """The psycopg connection under the migration's SQLAlchemy connection.

    Running file text through it keeps `:name` and `%` verbatim (SQLAlchemy
    would read them as bind parameters) and stays in the migration's
    transaction.
    """
    return op.get_bind().connection.driver_connection


# ---------------------------------------------------------------- the code


class Tree:
    """A checkout of the repository (the working tree, or a git ref unpacked
    by scripts/freeze_code.py): its head code, revisions and deltas."""

    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self.sql = root / "sql"
        self.migrations = root / "migrations"
        self.code_dir = self.migrations / "code"

    def render(self, path: Path) -> str:
        """A file's text with `#include plpython/x.py` lines replaced by that
        file, ending in exactly one newline."""
        text = INCLUDE.sub(lambda m: (self.root / m.group(1)).read_text().rstrip("\n"), path.read_text())
        return text.rstrip("\n") + "\n"

    def code_files(self) -> dict[str, Path]:
        """The head's code files by name: every `tally.*.sql` under sql/, at
        any depth (an index such as sql/index.sql is not an object), and
        sql/grants.sql."""
        files: dict[str, Path] = {}
        for path in sorted(self.sql.rglob("tally.*.sql")):
            if path.name in files:
                raise RuntimeError(
                    f"tally: {path.relative_to(self.root)} and {files[path.name].relative_to(self.root)}"
                    " define the same object; an object lives in one file"
                )
            files[path.name] = path
        if (self.sql / GRANTS).is_file():
            files[GRANTS] = self.sql / GRANTS
        return files

    def head_code(self) -> dict[str, str]:
        return {name: self.render(path) for name, path in self.code_files().items()}

    def index(self) -> list[str] | None:
        """The head's apply order from sql/index.sql (its `\\ir stage/file.sql`
        lines), checked against the files: each code file listed exactly once,
        in an order PostgreSQL accepts (see `check_order`). None without an
        index (a tree from before it existed)."""
        path = self.sql / INDEX
        if not path.is_file():
            return None
        listed: list[str] = []
        for m in INDEX_LINE.finditer(path.read_text()):
            rel = m.group(1)
            if not (self.sql / rel).is_file():
                raise RuntimeError(f"tally: sql/{INDEX} lists {rel}, which does not exist")
            listed.append(Path(rel).name)
        files = self.code_files()
        twice = sorted({n for n in listed if listed.count(n) > 1})
        missing = sorted(set(files) - set(listed))
        if twice or missing:
            raise RuntimeError(
                f"tally: sql/{INDEX} must list every code file once:"
                + (f" listed twice: {', '.join(twice)};" if twice else "")
                + (f" not listed: {', '.join(missing)}" if missing else "")
            )
        check_order(self.head_code(), listed)
        return listed

    @cache  # noqa: B019 (a Tree lives as long as the process or the tool's run)
    def revisions(self) -> tuple[str, ...]:
        """Revision ids from the first to the head, from alembic's script directory."""
        from alembic.script import ScriptDirectory

        if str(self.migrations) not in sys.path:
            sys.path.insert(0, str(self.migrations))
        script = ScriptDirectory(str(self.migrations))
        heads = script.get_heads()
        if len(heads) != 1:
            raise RuntimeError(f"tally: migrations have {len(heads)} heads ({', '.join(heads)}); history is linear")
        return tuple(reversed([s.revision for s in script.walk_revisions()]))

    def head(self) -> str:
        return self.revisions()[-1]

    def code_at(self, revision: str) -> dict[str, str]:
        """The code of `revision` as it shipped: {file name: text}."""
        revs = self.revisions()
        if revision not in revs:
            raise RuntimeError(f"tally: no revision {revision!r} (revisions: {', '.join(revs)})")
        code = self.head_code()
        at = revs.index(revision)
        for k in range(len(revs) - 2, at - 1, -1):
            rev, nxt = revs[k], revs[k + 1]
            code = self.step_down(code, rev, nxt)
        return code

    def step_down(self, code: dict[str, str], rev: str, nxt: str) -> dict[str, str]:
        """The code of `rev`, from the code of `nxt` (the revision after it)
        and the delta migrations/code/<rev>/."""
        d = self.code_dir / rev
        manifest = d / MANIFEST
        if not manifest.is_file():
            raise RuntimeError(
                f"tally: migrations/code/{rev}/{MANIFEST} is missing: revision {nxt} was added without"
                f" keeping the code of {rev}; run scripts/freeze_code.py {rev} --ref <a commit where {rev} is the head>"
            )
        absent, digest = read_manifest(manifest)
        code = dict(code)
        for path in d.glob("*.sql"):
            code[path.name] = path.read_text()
        for name in absent:
            if name not in code:
                raise RuntimeError(f"tally: migrations/code/{rev}/{MANIFEST}: {name} is absent at {rev} and {nxt}")
            del code[name]
        if code_digest(code) != digest:
            raise RuntimeError(
                f"tally: the code of revision {rev} does not reconstruct (sha256 differs from"
                f" migrations/code/{rev}/{MANIFEST}): the code of {nxt} changed after that delta was written."
                f" A change to released code needs a new revision; while {nxt} is unreleased, run"
                f" scripts/freeze_code.py {rev} --ref <a commit holding the code of {rev}>"
            )
        return code


def read_manifest(path: Path) -> tuple[list[str], str]:
    """(names absent at the revision, sha256 of its code) from a manifest."""
    absent: list[str] = []
    digest = None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, value = line.partition(" ")
        if word == "absent":
            absent.append(value.strip())
        elif word == "sha256":
            digest = value.strip()
        else:
            raise RuntimeError(f"tally: {path}: unknown line {line!r}")
    if digest is None:
        raise RuntimeError(f"tally: {path}: no sha256 line")
    return absent, digest


def code_digest(code: dict[str, str]) -> str:
    h = hashlib.sha256()
    for name in sorted(code):
        h.update(name.encode() + b"\0" + code[name].encode() + b"\0")
    return h.hexdigest()


def object_name(file_name: str) -> str:
    return file_name.removeprefix("tally.").removesuffix(".sql").removesuffix(CITUS)


def is_citus(file_name: str) -> bool:
    """A distributed install's body of an object (tally.<name>.citus.sql)."""
    return file_name.endswith(CITUS + ".sql")


def for_mode(code: dict[str, str], order: list[str], distributed: bool) -> list[str]:
    """The files of `order` that an install of that mode applies: of an
    object with a distributed body (tally.<name>.citus.sql), that body on a
    distributed install and the plain one elsewhere."""
    citus = {object_name(f) for f in code if is_citus(f)}
    return [f for f in order if object_name(f) not in citus or is_citus(f) == distributed or f == GRANTS]


# References to another object of tally in a file's code.
REFERENCE = re.compile(r'\btally\.("?)([A-Za-z_][A-Za-z0-9_$]*)\1')
# Objects PostgreSQL binds when they are created: views and SQL-language
# routines (what they call must exist first). PL/pgSQL and PL/Python bodies
# are bound when they run, in any order.
BOUND = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?VIEW\b|\bLANGUAGE\s+sql\b|\bBEGIN\s+ATOMIC\b", re.IGNORECASE)
# What is not code: comments, string literals (a hint naming another
# function, a COMMENT ON text), and dollar-quote delimiters (a SQL body
# between them is code).
NOT_CODE = re.compile(r"--[^\n]*|/\*.*?\*/|[EeUu]?'(?:[^']|'')*'|\$[A-Za-z_]?[A-Za-z0-9_]*\$", re.DOTALL)


def code_text(sql: str) -> str:
    """`sql` without comments and string literals."""
    return NOT_CODE.sub(" ", sql)


def _needs(code: dict[str, str]) -> tuple[dict[str, str], dict[str, set[str]]]:
    """{object name: file} and, per object, the objects of tally it needs to
    exist before it is created (views and SQL-language routines are bound
    when created; other bodies when they run)."""
    names = {object_name(f): f for f in code if f != GRANTS and not is_citus(f)}
    needs: dict[str, set[str]] = {name: set() for name in names}
    for f in code:
        if f == GRANTS:
            continue
        name = object_name(f)
        text = code_text(code[f])
        refs = {m.group(2) for m in REFERENCE.finditer(text)} if BOUND.search(text) else set()
        needs[name] |= {r for r in refs if r in names and r != name}
    return names, needs


def check_order(code: dict[str, str], order: list[str]) -> None:
    """Refuse an apply order (sql/index.sql) in which an object bound at
    creation comes before an object it names."""
    _, needs = _needs(code)
    seen: set[str] = set()
    for f in order:
        name = object_name(f)
        early = sorted(needs.get(name, set()) - seen)
        if early:
            raise RuntimeError(f"tally: sql/{INDEX} applies {f} before {', '.join(early)}, which it names")
        seen.add(name)


def apply_order(code: dict[str, str]) -> list[str]:
    """The files of `code` in the order they are applied, grants last: the
    order of sql/index.sql for the head's code (the files it lists are exactly
    the code's objects); for an older revision's code (other objects, a time
    before the index), an order derived from the text: an object bound at
    creation comes after every object of tally it names, otherwise by name.
    Nothing is retried."""
    indexed = WORKTREE.index()
    if indexed is not None and set(indexed) == set(code):
        return [f for f in indexed if f != GRANTS] + ([GRANTS] if GRANTS in code else [])
    names, needs = _needs(code)
    users: dict[str, list[str]] = {name: [] for name in names}
    for name, deps in needs.items():
        for dep in deps:
            users[dep].append(name)
    waiting = {name: len(deps) for name, deps in needs.items()}
    ready = [name for name, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(names[name])
        if f"tally.{name}{CITUS}.sql" in code:
            order.append(f"tally.{name}{CITUS}.sql")
        for user in users[name]:
            waiting[user] -= 1
            if waiting[user] == 0:
                heapq.heappush(ready, user)
    if len(order) < len(names):
        stuck = sorted(n for n, w in waiting.items() if w)
        raise RuntimeError(f"tally: the code of {', '.join(stuck)} refers to itself in a circle; no order applies it")
    if GRANTS in code:
        order.append(GRANTS)
    return order


WORKTREE = Tree(ROOT)


def calling_revision() -> str:
    """The revision whose upgrade() or downgrade() is running: the `revision`
    global of the nearest caller whose module is a revision (it defines
    revision, down_revision, upgrade and downgrade)."""
    frame = sys._getframe(1)
    while frame is not None:
        g = frame.f_globals
        if isinstance(g.get("revision"), str) and "down_revision" in g and "upgrade" in g and "downgrade" in g:
            return g["revision"]
        frame = frame.f_back
    raise RuntimeError("tally: apply_code()/drop_code() without a revision is for revisions only")


def code_files() -> dict[str, Path]:
    """The head's code files by name (`Tree.code_files`)."""
    return WORKTREE.code_files()


def code_at(revision: str | None = None) -> dict[str, str]:
    """The code of `revision` (None: of the revision calling)."""
    return WORKTREE.code_at(revision or calling_revision())


def code_names(revision: str | None = None) -> list[str]:
    """Names of the views and routines the code of `revision` (None: of the
    revision calling) defines."""
    return sorted(object_name(f) for f in code_at(revision) if f != GRANTS)


def execute(sql: str) -> None:
    """Run `sql` verbatim in the migration's transaction.

    Two statements of revision 0001 meet tally's version table, which lives
    in schema tally (see before_migrations()): `CREATE SCHEMA tally` finds
    the schema env.py made to hold that table, and `DROP SCHEMA tally
    CASCADE` would drop the table whose row alembic deletes right after.
    So the first is skipped when env.py made the schema in this run, and
    after the second the table is made again with its rows; env.py drops
    the emptied table and the schema when the run ends at base.
    """
    stmt = " ".join(sql.split()).rstrip(";").upper()
    conn = raw()
    if stmt == f"CREATE SCHEMA {VERSION_SCHEMA.upper()}" and _run["made_schema"]:
        return
    if stmt == f"DROP SCHEMA {VERSION_SCHEMA.upper()} CASCADE" and _has_version_table(conn):
        rows = [r[0] for r in conn.execute(f"SELECT version_num FROM {VERSION_SCHEMA}.{VERSION_TABLE}")]
        conn.execute(sql)
        _create_version_table(conn, rows)
        _run["made_schema"] = True
        return
    conn.execute(sql)


def distributed(conn: psycopg.Connection) -> bool:
    """Whether tally is distributed on Citus in this database
    (tally.settings.distributed; before revision 0004, never)."""
    has = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('tally.settings')"
        " AND attname = 'distributed' AND NOT attisdropped)"
    ).fetchone()[0]
    return bool(has and conn.execute("SELECT distributed FROM tally.settings").fetchone()[0])


def drop_code(revision: str | None = None) -> None:
    """Drop the views, functions and procedures the code of `revision` (None:
    of the revision calling) created in schema tally; state stays.

    Objects an operator added to schema tally are left alone. All in one
    statement per kind and without CASCADE: tally's objects may depend on
    each other, but an object of the operator's that depends on one of them
    stops the migration instead of being dropped silently.
    """
    conn = raw()
    names = code_names(revision or calling_revision())
    views = [
        r[0]
        for r in conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class AS c"
            " WHERE c.relnamespace = 'tally'::regnamespace AND c.relkind = 'v' AND c.relname = ANY(%s) ORDER BY 1",
            (names,),
        ).fetchall()
    ]
    if views:
        conn.execute(f"DROP VIEW {', '.join(views)}")
    # an event trigger goes with its function (the code file that makes the
    # function makes the trigger too)
    for (event_trigger,) in conn.execute(
        "SELECT quote_ident(e.evtname) FROM pg_event_trigger AS e JOIN pg_proc AS p ON p.oid = e.evtfoid"
        " WHERE p.pronamespace = 'tally'::regnamespace AND p.proname = ANY(%s) ORDER BY 1",
        (names,),
    ).fetchall():
        conn.execute(f"DROP EVENT TRIGGER {event_trigger}")
    for kind, code in (("FUNCTION", "f"), ("PROCEDURE", "p")):
        routines = [
            r[0]
            for r in conn.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc AS p"
                " WHERE p.pronamespace = 'tally'::regnamespace AND p.prokind = %s AND p.proname = ANY(%s)"
                " ORDER BY 1",
                (code, names),
            ).fetchall()
        ]
        if routines:
            conn.execute(f"DROP {kind} {', '.join(routines)}")


def apply_code(revision: str | None = None) -> None:
    """(Re)create every function, procedure and view of the code of
    `revision` (None: of the revision calling), then apply its grants.sql if
    it has one. Order: `apply_order()`.

    Temporary tables the code makes (grants.sql's `ON COMMIT DROP` list) are
    dropped at the end: one alembic run is one transaction, and the next
    revision's apply_code() would otherwise find them there.
    """
    conn = raw()
    revision = revision or calling_revision()
    code = code_at(revision)
    temp = (
        "SELECT c.oid::regclass::text FROM pg_class AS c"
        " WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind IN ('r', 'p')"
    )
    before = {r[0] for r in conn.execute(temp)}
    for name in for_mode(code, apply_order(code), distributed(conn)):
        try:
            with conn.transaction():
                conn.execute(code[name])
        except psycopg.Error as exc:
            raise RuntimeError(f"tally: cannot apply {name} of revision {revision}: {exc}") from exc
    made = sorted({r[0] for r in conn.execute(temp)} - before)
    if made:
        conn.execute(f"DROP TABLE {', '.join(made)}")


ROLES = ("tally_writer", "tally_reader", "tally_admin")


def granted() -> list[tuple[str, str, str]]:
    """EXECUTE and SELECT grants on tally's routines and views to roles other
    than their owner, PUBLIC and tally's own roles (sql/grants.sql decides
    those), as (kind, name, grantee): what a migration that re-creates the
    code must grant again."""
    return [
        tuple(r)
        for r in raw()
        .execute(
            """
            SELECT 'routine', p.proname::text, a.grantee::regrole::text
            FROM pg_proc AS p, aclexplode(p.proacl) AS a
            WHERE p.pronamespace = 'tally'::regnamespace AND a.grantee <> 0 AND a.grantee <> p.proowner
              AND a.privilege_type = 'EXECUTE'
              AND a.grantee::regrole::text <> ALL(%(roles)s)
            UNION
            SELECT 'view', c.relname::text, a.grantee::regrole::text
            FROM pg_class AS c, aclexplode(c.relacl) AS a
            WHERE c.relnamespace = 'tally'::regnamespace AND c.relkind = 'v' AND a.grantee <> 0
              AND a.grantee <> c.relowner AND a.privilege_type = 'SELECT'
              AND a.grantee::regrole::text <> ALL(%(roles)s)
            ORDER BY 1, 2, 3
            """,
            {"roles": list(ROLES)},
        )
        .fetchall()
    ]


def regrant(grants: list[tuple[str, str, str]]) -> None:
    """Grant again what `granted()` returned, on every signature that now
    carries each name (a routine whose parameters changed keeps its grants)."""
    conn = raw()
    for kind, name, grantee in grants:
        if kind == "view":
            if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"tally.{name}",)).fetchone()[0]:
                execute(f'GRANT SELECT ON tally."{name}" TO {grantee}')
            continue
        for sig, prokind in conn.execute(
            "SELECT p.oid::regprocedure::text, p.prokind FROM pg_proc AS p"
            " WHERE p.pronamespace = 'tally'::regnamespace AND p.proname = %s",
            (name,),
        ).fetchall():
            what = "PROCEDURE" if prokind == "p" else "FUNCTION"
            execute(f"GRANT EXECUTE ON {what} {sig} TO {grantee}")


# ------------------------------------------------------- the version table
#
# Why tally.alembic_version: an application that uses alembic keeps its own
# revision in public.alembic_version; sharing that table made alembic refuse
# one of the two histories. tally's history lives in its own schema, so both
# stay independent and `downgrade base` can leave nothing behind.
#
# The schema must exist before alembic creates the table in it, i.e. before
# revision 0001 (which creates the schema) runs, and 0001's downgrade drops
# the schema before alembic deletes the last row. Revisions are never
# edited, so env.py and `execute()` bridge this: before_migrations() makes
# the schema when it is missing, 0001's CREATE SCHEMA then finds it, its DROP
# SCHEMA ... CASCADE keeps the table (made again with its rows), and
# after_migrations() drops the emptied table and the schema it made.

_run = {"made_schema": False}


def require_superuser(conn: psycopg.Connection) -> None:
    """Refuse to migrate as a role that is not a superuser, saying why and
    what to do: the revisions create PL/Python procedures (plpython3u is an
    untrusted language: only a superuser may create functions in it), the
    extensions plpython3u, pg_partman and pg_cron, and tally's roles. Using
    tally afterwards needs no superuser (README, "Installing")."""
    user, superuser = conn.execute(
        "SELECT current_user, rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user"
    ).fetchone()
    if not superuser:
        raise SystemExit(
            f"tally migrations: role {user} is not a superuser; run `alembic upgrade`/`downgrade` as one"
            " (they create PL/Python procedures, plpython3u being an untrusted language, extensions and roles)."
            f"\nhint: afterwards a non-superuser may administer tally: GRANT tally_admin TO {user};"
        )


def _has_version_table(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{VERSION_SCHEMA}.{VERSION_TABLE}",)).fetchone()[0]


def _create_version_table(conn: psycopg.Connection, rows: list[str]) -> None:
    """alembic's own shape of the version table (String(32), `<table>_pkc`)."""
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {VERSION_SCHEMA}")
    conn.execute(
        f"CREATE TABLE {VERSION_SCHEMA}.{VERSION_TABLE} (version_num VARCHAR(32) NOT NULL,"
        f" CONSTRAINT {VERSION_TABLE}_pkc PRIMARY KEY (version_num))"
    )
    for row in rows:
        conn.execute(f"INSERT INTO {VERSION_SCHEMA}.{VERSION_TABLE} (version_num) VALUES (%s)", (row,))


def before_migrations(conn: psycopg.Connection) -> None:
    """Run by env.py in the migration's transaction, before alembic reads
    the version table.

    An install made while tally's revision lived in public.alembic_version
    (schema tally present, no tally.alembic_version, a row '0001' or '0002'
    there) is carried over: the row moves to tally.alembic_version, and
    public.alembic_version is dropped only if it is then empty (every other
    row, an application's, stays untouched). A database without schema
    tally gets it, to hold the version table.
    """
    _run["made_schema"] = False
    schema = conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (VERSION_SCHEMA,)).fetchone()[0]
    legacy = conn.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL").fetchone()[0]
    if schema and legacy and not _has_version_table(conn):
        rows = [
            r[0]
            for r in conn.execute(
                "SELECT version_num FROM public.alembic_version WHERE version_num = ANY(%s)", (list(LEGACY_REVISIONS),)
            )
        ]
        if len(rows) == 1:
            _create_version_table(conn, rows)
            # What sql/grants.sql gave tally's roles on every table of
            # schema tally ("ON ALL TABLES"), as a fresh install has it.
            for privilege, grantee in conn.execute(
                "SELECT a.privilege_type, a.grantee::regrole::text"
                " FROM pg_class AS c, aclexplode(c.relacl) AS a"
                " WHERE c.oid = to_regclass('tally.counters') AND a.grantee <> 0"
                " AND a.grantee::regrole::text = ANY(%s) ORDER BY 1, 2",
                (list(ROLES),),
            ).fetchall():
                conn.execute(f"GRANT {privilege} ON {VERSION_SCHEMA}.{VERSION_TABLE} TO {grantee}")
            conn.execute("DELETE FROM public.alembic_version WHERE version_num = %s", (rows[0],))
            note = "kept (it holds other rows)"
            if conn.execute("SELECT NOT EXISTS (SELECT FROM public.alembic_version)").fetchone()[0]:
                conn.execute("DROP TABLE public.alembic_version")
                note = "dropped (now empty)"
            print(
                f"tally: moved revision {rows[0]} from public.alembic_version to"
                f" {VERSION_SCHEMA}.{VERSION_TABLE}; public.alembic_version {note}",
                file=sys.stderr,
            )
    if not schema:
        conn.execute(f"CREATE SCHEMA {VERSION_SCHEMA}")
        _run["made_schema"] = True


def after_migrations(conn: psycopg.Connection) -> None:
    """Run by env.py at the end of the migration's transaction: at base,
    drop the emptied version table and the schema that only held it (made
    by before_migrations() or kept by 0001's DROP SCHEMA)."""
    if not _run["made_schema"]:
        return
    if (
        _has_version_table(conn)
        and conn.execute(f"SELECT EXISTS (SELECT FROM {VERSION_SCHEMA}.{VERSION_TABLE})").fetchone()[0]
    ):
        return
    try:
        with conn.transaction():
            conn.execute(f"DROP TABLE IF EXISTS {VERSION_SCHEMA}.{VERSION_TABLE}")
            conn.execute(f"DROP SCHEMA {VERSION_SCHEMA}")
    except psycopg.errors.DependentObjectsStillExist:
        pass  # something else lives in schema tally: it stays, and so does the table


def after_commit(conn: psycopg.Connection) -> None:
    """Run by env.py once the migration has committed: on a distributed
    install, each Citus node writes its own body of tally._append_local
    (its fast write into the delta shards it holds), which it does over
    connections of its own that see only committed code. Nothing on one node
    or where the installed revision has no such function."""
    if conn.execute("SELECT to_regprocedure('tally._make_append_local(boolean)') IS NOT NULL").fetchone()[0]:
        conn.execute("SELECT tally._make_append_local(true)")
