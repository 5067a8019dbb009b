"""Helpers shared by tally's alembic revisions.

State (tables, partitions, data) lives in the numbered revisions; code
(functions, procedures, views) lives in sql/ and plpython/ and is (re)applied
by `apply_code()`, so the files in the repository are the source of truth.
"""

from __future__ import annotations

import re
from pathlib import Path

from alembic import op

ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = ROOT / "sql"
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


def code_files() -> list[Path]:
    files: list[Path] = []
    for kind in CODE_DIRS:
        d = SQL_DIR / kind
        if d.is_dir():
            files.extend(sorted(d.glob("*.sql")))
    return files


def apply_code() -> None:
    """(Re)create every function, procedure and view from sql/.

    SQL-language bodies and views are bound when created, so a file may need
    another one first: files that fail are retried (each under a savepoint)
    until a pass makes no progress, which raises the first remaining error.
    """
    conn = raw()
    pending = code_files()
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
