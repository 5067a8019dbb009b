"""Connections of tally's command line (compact, status, metrics, demo).

Every one works the same on a direct connection and through a connection
pooler in transaction mode (pgbouncer), where each transaction may run on
another server connection, shared with other clients:

- no server-side prepared statements (``prepare_threshold=None``): a
  statement prepared on one server connection does not exist on the next;
- no session state: nothing is ``SET`` for the session (a pooled server
  connection would carry it to the next client); the application name goes
  in the connection parameters, which a pooler keeps per client.

What that costs on a direct connection: each statement is parsed and
planned at every execution instead of once (README, "Connection poolers").
"""

from __future__ import annotations

import psycopg


def connect(dsn: str, *, application_name: str | None = None, **kwargs: object) -> psycopg.Connection:
    """An autocommit connection safe behind a transaction-mode pooler."""
    kwargs.setdefault("autocommit", True)
    kwargs["prepare_threshold"] = None
    if application_name is not None:
        kwargs["application_name"] = application_name
    return psycopg.connect(dsn, **kwargs)
