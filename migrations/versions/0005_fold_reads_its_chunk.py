"""A fold step reads its chunk, not its shard; a claim reads its own ids.

tally._fold_chunk deletes a chunk by its row ids with a TID scan; before,
the planner chose a sequential scan of the whole shard for every chunk of
100,000 deltas, so a backlog cost the square of its size (live folds ran at
about 0.65x their speed on a 2,000,000-delta shard). tally._claim_events
looks each event id up on its own; a session whose generic plan was made
while the day's partition was new hashed every id of the window for every
claim (increments with an event id ran at a fifth of their speed on a fresh
install). Code only: no table changes. On a distributed install the
functions are distributed again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import tally_citus
import tally_code

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _recreate(drop: str | None, apply: str | None) -> None:
    grants = tally_code.granted()
    tally_code.drop_code(drop)
    tally_code.apply_code(apply)
    tally_code.regrant(grants)
    if tally_citus.is_distributed():
        tally_citus.distribute_functions()


def upgrade() -> None:
    _recreate("0004", None)


def downgrade() -> None:
    _recreate(None, "0004")
