"""Throughput and scale-out: a leaner hot path and fold, and tally on Citus.

Fold chunks in (counter, key) order: tally.shards and tally.shard_slices
resume at a pair (resume_counter, resume_key) instead of a row id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import tally_code

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ex = tally_code.execute
    grants = tally_code.granted()
    tally_code.drop_code("0003")
    # Fold chunks take a shard's deltas in (counter, key) order: a shard (and
    # a slice of it) resumes at the pair its last chunk ended in (NULL: the
    # first pair), no longer at a row id.
    for table in ("shards", "shard_slices"):
        ex(
            f"ALTER TABLE tally.{table} DROP COLUMN resume_at,"
            " ADD COLUMN resume_counter integer, ADD COLUMN resume_key text"
        )
    tally_code.apply_code()
    tally_code.regrant(grants)


def downgrade() -> None:
    ex = tally_code.execute
    grants = tally_code.granted()
    tally_code.drop_code()
    for table in ("shards", "shard_slices"):
        ex(
            f"ALTER TABLE tally.{table} DROP COLUMN resume_counter, DROP COLUMN resume_key,"
            " ADD COLUMN resume_at tid NOT NULL DEFAULT '(0,0)'"
        )
    tally_code.apply_code("0003")
    tally_code.regrant(grants)
