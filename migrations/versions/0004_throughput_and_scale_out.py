"""Throughput and scale-out: a leaner hot path and fold, and tally on Citus.

On a database with Citus and workers (or with -x distributed=on) tally is
distributed (migrations/tally_citus.py, docs/scale-out.md):
tally.settings.distributed says so, and the code takes the distributed
paths (folds pushed down to the workers, event ids claimed beside their
key: tally.event_ids gains a key column, part of its primary key there).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import tally_citus
import tally_code

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ex = tally_code.execute
    ex("ALTER TABLE tally.settings ADD COLUMN distributed boolean NOT NULL DEFAULT false")
    # Where an event id was claimed: the key its increment went to (a
    # distributed install keeps the claim on the key's worker).
    ex("ALTER TABLE tally.event_ids ADD COLUMN key text")
    # How many marker rows an intact install has (1; on a distributed
    # install one per shard), and on which node a crash reset happened.
    ex("ALTER TABLE tally.crash_marker ADD COLUMN expected integer NOT NULL DEFAULT 1")
    ex("ALTER TABLE tally.crash_resets ADD COLUMN node text")
    grants = tally_code.granted()
    tally_code.drop_code("0003")
    tally_code.apply_code()
    tally_code.regrant(grants)
    if tally_citus.wanted():
        tally_citus.distribute()


def downgrade() -> None:
    if tally_citus.is_distributed():
        raise SystemExit(
            "tally migrations: a distributed install cannot go below 0004 (earlier revisions are single-node);"
            " move the data to a plain PostgreSQL install instead"
        )
    ex = tally_code.execute
    grants = tally_code.granted()
    tally_code.drop_code()
    tally_code.apply_code("0003")
    tally_code.regrant(grants)
    ex("ALTER TABLE tally.event_ids DROP COLUMN key")
    ex("ALTER TABLE tally.crash_resets DROP COLUMN node")
    ex("ALTER TABLE tally.crash_marker DROP COLUMN expected")
    ex("ALTER TABLE tally.settings DROP COLUMN distributed")
