"""Where production runs tally: hot standbys, failover, poolers, quarantine.

- Reads on a hot standby: the read functions and views read the logged
  delta shards only there (UNLOGGED shards are not replicated); new reads
  tally.pending_deltas() and tally.node_status(); tally.counter_status
  gains pending_complete, tally.health a 'node' check.
- The loss report of a crash or a promotion: tally.write_gen.folded_before
  (per generation, before when every acknowledged increment is folded),
  tally.crash_resets.lost_until and cause ('crash' or 'promotion').
- Quarantine has a way out: tally.release_quarantined() re-applies or
  discards a key's deltas set aside, recorded in tally.quarantine_releases;
  reads of such a key warn (an index on tally.quarantine serves them).
- The compactor's module is held once, by tally._compactor(); compact and
  compact_loop load it. compact_step puts back the caller's search_path
  and does not retry a cancel.
- One seam per mode: a distributed install gets the Citus bodies of the
  objects that have one (tally.<name>.citus.sql: increment_counter,
  _append_claimed, _fold_step, _detect_crash_reset, node_deadlocks), a
  single node the plain ones; one fold engine (_fold_upserts,
  _overflowing) for both; _counter is _lookup_counter, _mark_shards
  _mark_citus_shards.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import tally_citus
import tally_code

revision = "0006"
down_revision = "0005"
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
    ex = tally_code.execute
    ex("ALTER TABLE tally.write_gen ADD COLUMN folded_before timestamptz[] NOT NULL DEFAULT '{NULL,NULL}'")
    # Resets recorded before: a crash, lost up to the server's start.
    ex("ALTER TABLE tally.crash_resets ADD COLUMN lost_until timestamptz, ADD COLUMN cause text")
    ex("UPDATE tally.crash_resets SET lost_until = server_started_at, cause = 'crash'")
    ex(
        "ALTER TABLE tally.crash_resets ALTER COLUMN lost_until SET NOT NULL, ALTER COLUMN cause SET NOT NULL,"
        " ADD CONSTRAINT crash_resets_cause_check CHECK (cause IN ('crash', 'promotion'))"
    )
    ex("CREATE INDEX quarantine_counter_id_key_idx ON tally.quarantine (counter_id, key)")
    ex(
        """
        CREATE TABLE tally.quarantine_releases (
            id bigint GENERATED ALWAYS AS IDENTITY,
            counter_id integer NOT NULL,
            key text NOT NULL,
            action text NOT NULL,
            deltas bigint NOT NULL,
            delta_sum numeric NOT NULL,
            released_at timestamptz NOT NULL DEFAULT now(),
            released_by name NOT NULL DEFAULT session_user,
            CONSTRAINT quarantine_releases_pkey PRIMARY KEY (id),
            CONSTRAINT quarantine_releases_action_check CHECK (action IN ('apply', 'discard'))
        )
        """
    )
    _recreate("0005", None)


def downgrade() -> None:
    ex = tally_code.execute
    _recreate(None, "0005")
    ex("DROP TABLE tally.quarantine_releases")
    ex("DROP INDEX tally.quarantine_counter_id_key_idx")
    ex(
        "ALTER TABLE tally.crash_resets DROP CONSTRAINT crash_resets_cause_check,"
        " DROP COLUMN cause, DROP COLUMN lost_until"
    )
    ex("ALTER TABLE tally.write_gen DROP COLUMN folded_before")
