"""alembic environment for tally: runs migrations over psycopg 3 against TALLY_DSN.

tally's revision is kept in its own version table, tally.alembic_version,
never in the application's public.alembic_version; tally_code's
before_migrations() / after_migrations() make and remove schema tally around
it (why, and how revision 0001 meets it: tally_code, "the version table").
"""

from __future__ import annotations

import os

import psycopg
import tally_code
from alembic import context
from sqlalchemy import create_engine, pool


def _destination() -> str | None:
    """The revision an upgrade or downgrade goes to; None for a command that
    migrates nothing (`alembic current`, `history`)."""
    try:
        return context.get_revision_argument()
    except KeyError:
        return None


def run_migrations_online() -> None:
    dsn = context.get_x_argument(as_dictionary=True).get("dsn") or os.environ.get("TALLY_DSN")
    if not dsn:
        raise SystemExit("tally migrations: set TALLY_DSN to the target database (libpq string or URL)")
    # No server-side prepared statements: a migration works the same through
    # a transaction-mode pooler (pgbouncer), where they would not persist.
    engine = create_engine(
        "postgresql+psycopg://",
        poolclass=pool.NullPool,
        creator=lambda: psycopg.connect(dsn, prepare_threshold=None),
    )
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            transactional_ddl=True,
            version_table=tally_code.VERSION_TABLE,
            version_table_schema=tally_code.VERSION_SCHEMA,
        )
        with context.begin_transaction():
            raw = connection.connection.driver_connection
            if _destination() is not None:
                tally_code.require_superuser(raw)
            tally_code.before_migrations(raw)
            context.run_migrations()
            tally_code.after_migrations(raw)
    if _destination() is not None:
        with psycopg.connect(dsn, prepare_threshold=None, autocommit=True) as conn:
            tally_code.after_commit(conn)


if context.is_offline_mode():
    raise SystemExit("tally migrations run online only (they execute the SQL files in sql/)")
run_migrations_online()
