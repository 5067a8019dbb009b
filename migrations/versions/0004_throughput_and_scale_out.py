"""Throughput and scale-out: a leaner hot path and fold, and tally on Citus.

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
    grants = tally_code.granted()
    tally_code.drop_code("0003")
    tally_code.apply_code()
    tally_code.regrant(grants)


def downgrade() -> None:
    grants = tally_code.granted()
    tally_code.drop_code()
    tally_code.apply_code("0003")
    tally_code.regrant(grants)
