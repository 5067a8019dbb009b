"""Tracked tables are not supported on a distributed install yet: refused
with 0A000 naming it, nothing installed (no trigger on the table, nothing
registered), the table's writes untouched; the event triggers that follow
DDL on tracked tables stay out of the way of DDL there."""

from __future__ import annotations

import psycopg
import pytest


def test_track_table_is_refused_on_a_distributed_install(cconn: psycopg.Connection, name: str) -> None:
    cconn.execute(f"CREATE TABLE {name}_follow (id bigserial PRIMARY KEY, subject integer)")
    cconn.execute(f"INSERT INTO {name}_follow (subject) VALUES (1), (1), (2)")
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="not supported on a distributed"):
        cconn.execute("SELECT tally.track_table(%s, %s, 'subject')", (name, f"{name}_follow"))
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        cconn.execute("CALL tally.track_table_online(%s, %s, 'subject', p_counted => NULL)", (name, f"{name}_follow"))
    assert cconn.execute(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass", (f"{name}_follow",)
    ).fetchone() == (0,)
    assert cconn.execute("SELECT count(*) FROM tally.tracked_tables").fetchone() == (0,)
    cconn.execute(f"INSERT INTO {name}_follow (subject) VALUES (3)")
    cconn.execute(f"ALTER TABLE {name}_follow RENAME COLUMN subject TO subject_id")
    cconn.execute(f"DROP TABLE {name}_follow")
    assert cconn.execute("SELECT tally.counter_value(%s, '1')", (name,)).fetchone() == (0,)
