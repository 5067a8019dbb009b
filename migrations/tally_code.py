"""Helpers shared by tally's alembic revisions.

State (tables, partitions, data) lives in the numbered revisions; code
(functions, procedures, views) lives in sql/ and plpython/ and is (re)applied
by `apply_code()`, so the files in the repository are the source of truth.

Only the head revision applies sql/ as it is. When a revision stops being the
head, its code is frozen first (`scripts/freeze_code.py REV` renders sql/ and
the plpython/ files it includes into migrations/code/REV/), and the revision
applies that frozen copy: upgrading or downgrading through it then installs
exactly the code it shipped with.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from alembic import op

ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = ROOT / "sql"
FROZEN_DIR = Path(__file__).resolve().parent / "code"
INCLUDE = re.compile(r"^#include (\S+)\s*$", re.MULTILINE)

# Code kinds in the order they are applied: functions may reference each other
# late-bound (PL/pgSQL, PL/Python), views need the functions they call.
CODE_DIRS = ("functions", "procedures", "views")


def raw():
    """The psycopg connection under the migration's SQLAlchemy connection.

    Running file text through it keeps `:name` and `%` verbatim (SQLAlchemy
    would read them as bind parameters) and stays in the migration's
    transaction.
    """
    return op.get_bind().connection.driver_connection


def render(path: Path) -> str:
    """A SQL file's text with `#include plpython/x.py` lines replaced by that file."""
    text = path.read_text()
    return INCLUDE.sub(lambda m: (ROOT / m.group(1)).read_text().rstrip("\n"), text)


def execute(sql: str) -> None:
    raw().execute(sql)


def execute_file(path: Path) -> None:
    execute(render(path))


def _calling_revision(revision: str | None) -> str | None:
    """`revision`, or when None the revision module calling apply_code() /
    drop_code(): a revision that is no longer the head has a frozen copy."""
    if revision is not None:
        return revision
    frame = sys._getframe(2)
    calling = frame.f_globals.get("revision")
    if isinstance(calling, str) and (FROZEN_DIR / calling).is_dir():
        return calling
    return None


def code_files(base: Path = SQL_DIR) -> list[Path]:
    files: list[Path] = []
    for kind in CODE_DIRS:
        d = base / kind
        if d.is_dir():
            files.extend(sorted(d.glob("*.sql")))
    return files


def code_names(revision: str | None = None) -> list[str]:
    """Names of the views and routines a revision's code defines (one object
    per file, named `tally.<name>.sql`): sql/ for the head, else the frozen
    copy of `revision`."""
    base = FROZEN_DIR / revision if revision else SQL_DIR
    return sorted({path.name.removeprefix("tally.").removesuffix(".sql") for path in code_files(base)})


def drop_code(revision: str | None = None) -> None:
    """Drop the views, functions and procedures the code of `revision` (None:
    sql/ at the head) created in schema tally; state stays.

    Objects an operator added to schema tally are left alone. All in one
    statement per kind and without CASCADE: tally's objects may depend on
    each other, but an object of the operator's that depends on one of them
    stops the migration instead of being dropped silently.
    """
    conn = raw()
    names = code_names(_calling_revision(revision))
    views = [
        r[0]
        for r in conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class AS c"
            " WHERE c.relnamespace = 'tally'::regnamespace AND c.relkind = 'v' AND c.relname = ANY(%s) ORDER BY 1",
            (names,),
        ).fetchall()
    ]
    if views:
        execute(f"DROP VIEW {', '.join(views)}")
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
            execute(f"DROP {kind} {', '.join(routines)}")


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


def apply_code(revision: str | None = None) -> None:
    """(Re)create every function, procedure and view from sql/, or from the
    frozen copy of `revision` under migrations/code/.

    SQL-language bodies and views are bound when created, so a file may need
    another one first: files that fail are retried (each under a savepoint)
    until a pass makes no progress, which raises the first remaining error.
    """
    conn = raw()
    revision = _calling_revision(revision)
    base = FROZEN_DIR / revision if revision else SQL_DIR
    pending = code_files(base)
    while pending:
        failed: list[tuple[Path, Exception]] = []
        for path in pending:
            try:
                with conn.transaction():
                    execute_file(path)
            except Exception as exc:  # retried below; re-raised if stuck
                failed.append((path, exc))
        if len(failed) == len(pending):
            path, exc = failed[0]
            raise RuntimeError(f"tally: cannot apply {path.relative_to(ROOT)}: {exc}") from exc
        pending = [p for p, _ in failed]
    grants = base / "grants.sql"
    if grants.exists():
        execute_file(grants)
