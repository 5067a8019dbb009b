"""Idempotency keys (tally.event_ids, p_event_id / p_event_ids) and least
privilege (roles tally_writer, tally_reader, tally_admin; nothing for PUBLIC).

increment_counter and increment_counters gain a parameter, so their
signatures change: the code is dropped and re-created, and every grant an
operator made on a routine or view is made again on its new signature.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import psycopg
import tally_code

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROLE_COMMENTS = {
    "tally_writer": "tally: may increment counters (tally.increment_counter, tally.increment_counters)",
    "tally_reader": "tally: may read counter values, series, top keys and the views of tally",
    "tally_admin": "tally: writer and reader, plus counters, retention, sources, drift, compactor, schedule",
}


def upgrade() -> None:
    ex = tally_code.execute
    conn = tally_code.raw()
    # Roles are cluster-wide: another database may have created them already.
    ex(
        """
        CREATE TABLE tally.installed_roles (
            rolname name PRIMARY KEY,
            created_by_tally boolean NOT NULL
        )
        """
    )
    for role, comment in ROLE_COMMENTS.items():
        exists = conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)).fetchone()[0] > 0
        if not exists:
            ex(f"CREATE ROLE {role} NOLOGIN")
            ex(f"COMMENT ON ROLE {role} IS '{comment}'")
        conn.execute("INSERT INTO tally.installed_roles VALUES (%s, %s)", (role, not exists))

    ex(
        """
        CREATE TABLE tally.settings (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            event_window_days integer NOT NULL DEFAULT 7 CHECK (event_window_days BETWEEN 1 AND 366)
        )
        """
    )
    ex("INSERT INTO tally.settings DEFAULT VALUES")
    ex("COMMENT ON TABLE tally.settings IS 'tally: settings (tally.set_event_window)'")
    # The idempotency store: one row per (counter, event id) applied, in the
    # daily partition of the day it was applied (UTC). Partitions past the
    # window are dropped whole (tally._event_partitions); nothing is DELETEd.
    ex(
        """
        CREATE TABLE tally.event_ids (
            counter_id integer NOT NULL,
            event_id text NOT NULL,
            seen_on date NOT NULL,
            PRIMARY KEY (counter_id, event_id, seen_on)
        ) PARTITION BY RANGE (seen_on)
        """
    )
    ex("COMMENT ON TABLE tally.event_ids IS 'tally: event ids applied within the idempotency window, by day'")
    # Per UTC day of the window, an xid assigned no earlier than that day
    # began: while a snapshot's xmin is older, a transaction that began the
    # day before may still be running (tally._claim_days).
    ex(
        """
        CREATE TABLE tally.event_days (
            day date PRIMARY KEY,
            first_xid xid8 NOT NULL
        )
        """
    )

    grants = tally_code.granted()
    tally_code.drop_code("0001")
    tally_code.apply_code()
    tally_code.regrant(grants)
    ex("SELECT tally._event_partitions()")


def downgrade() -> None:
    ex = tally_code.execute
    conn = tally_code.raw()
    grants = tally_code.granted()
    tally_code.drop_code()
    ex("DROP TABLE tally.event_ids, tally.event_days, tally.settings")
    tally_code.apply_code("0001")
    tally_code.regrant(grants)
    for role in tally_code.ROLES:
        ex(f"REVOKE ALL ON ALL TABLES IN SCHEMA tally FROM {role}")
        ex(f"REVOKE ALL ON ALL ROUTINES IN SCHEMA tally FROM {role}")
        ex(f"REVOKE ALL ON SCHEMA tally FROM {role}")
    created = [
        r[0]
        for r in conn.execute(
            "SELECT rolname FROM tally.installed_roles WHERE created_by_tally ORDER BY rolname DESC"
        ).fetchall()
    ]
    ex("DROP TABLE tally.installed_roles")
    for role in created:
        # Another database may still grant it something: then it stays.
        try:
            with conn.transaction():
                ex(f"DROP ROLE {role}")
        except psycopg.Error as exc:  # reported, not fatal
            print(f"tally: kept role {role}: {exc}".splitlines()[0])
