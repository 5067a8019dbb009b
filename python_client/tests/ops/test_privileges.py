"""Least privilege, with real logins: tally_admin cannot forge internal
state through internal functions.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo


@contextlib.contextmanager
def login(admin: psycopg.Connection, dsn: str, *roles: str) -> Iterator[psycopg.Connection]:
    """A connection as a fresh LOGIN role that is a member of `roles` only."""
    name = f"tally_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE ROLE {name} LOGIN IN ROLE {', '.join(roles)}")
    try:
        with psycopg.connect(make_conninfo(**{**conninfo_to_dict(dsn), "user": name}), autocommit=True) as c:
            yield c
    finally:
        db = admin.info.dbname
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND datname = %s", (name, db)
        )
        admin.execute(f"DROP OWNED BY {name}")
        admin.execute(f"DROP ROLE {name}")


INTERNAL_CALLS = [
    ("_record_drift", "SELECT tally._record_drift(1, 1, '[]'::jsonb, false)"),
    ("_correct", "SELECT tally._correct('c', 'k', 1000000, 'x')"),
    ("_record_fold", "SELECT tally._record_fold(now(), 0, 1, 'ok', NULL)"),
    ("_fold_step", "SELECT * FROM tally._fold_step(100)"),
    ("_detect_crash_reset", "SELECT tally._detect_crash_reset()"),
    ("_event_partitions", "SELECT * FROM tally._event_partitions()"),
]


def test_tally_admin_cannot_forge_internal_state(conn: psycopg.Connection, dsn: str) -> None:
    conn.execute("SELECT tally.create_counter('c')")
    conn.execute("SELECT tally.increment_counter('c', 'k', 2)")
    before = conn.execute("SELECT count(*) FROM tally.fold_runs").fetchone()[0]
    with login(conn, dsn, "tally_admin") as admin:
        for name, sql in INTERNAL_CALLS:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                admin.execute(sql)
            assert name  # each refused
        # what the admin may do works, through the public functions only
        admin.execute("CALL tally.compact()")
        assert [s for s, _ in admin.execute("SELECT * FROM tally.maintain()").fetchall() if s == "failed"] == []
        assert admin.execute("SELECT count(*) FROM tally.check_drift('c')").fetchone()[0] == 0
        admin.execute("CALL tally.compact_loop(0.3, 0.1)")
    assert conn.execute("SELECT tally.counter_value('c', 'k')").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM tally.corrections").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM tally.fold_runs").fetchone()[0] > before
