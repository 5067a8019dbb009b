"""alembic environment for tally: runs migrations over psycopg 3 against TALLY_DSN."""

from __future__ import annotations

import os

import psycopg
from alembic import context
from sqlalchemy import create_engine, pool


def run_migrations_online() -> None:
    dsn = context.get_x_argument(as_dictionary=True).get("dsn") or os.environ.get("TALLY_DSN")
    if not dsn:
        raise SystemExit("tally migrations: set TALLY_DSN to the target database (libpq string or URL)")
    engine = create_engine("postgresql+psycopg://", poolclass=pool.NullPool, creator=lambda: psycopg.connect(dsn))
    with engine.connect() as connection:
        context.configure(connection=connection, transactional_ddl=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("tally migrations run online only (they execute the SQL files in sql/)")
run_migrations_online()
