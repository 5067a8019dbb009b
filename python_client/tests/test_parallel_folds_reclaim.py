"""A shard folded in slices is truncated only once every slice's deleting
transaction is invisible to all: a reader whose snapshot predates the slice
folds keeps reading the same value (the deltas it sees pending are still
there), even when the shard's recorded drain is old enough to truncate."""

from __future__ import annotations

import time

import psycopg


def step(conn: psycopg.Connection, slice_: int, slices: int = 2) -> str:
    row = conn.execute(
        "SELECT action, sqlstate, error FROM tally.compact_step(100000, NULL, 1, 5, NULL, %s, %s)", (slice_, slices)
    ).fetchone()
    assert row[0] not in ("failed", "retry"), row
    return row[0]


def test_reclaim_waits_for_every_slices_deleting_transaction(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('sl_reclaim')")
    # a committed transaction: the "old drain" put on record below
    (old_xid,) = conn.execute("SELECT pg_current_xact_id()").fetchone()
    keys = [f"k{i}" for i in range(100)]
    for key in keys:
        conn.execute("SELECT tally.increment_counter('sl_reclaim', %s, 3)", (key,))
    total = "SELECT sum(tally.counter_value('sl_reclaim', k)) FROM unnest(%s::text[]) AS k"
    # Until no snapshot anywhere in the cluster predates that transaction
    # (another session's), it would not count as invisible to all.
    deadline = time.monotonic() + 60
    while not conn.execute("SELECT tally._invisible_to_all(%s::xid8)", (old_xid,)).fetchone()[0]:
        assert time.monotonic() < deadline, "an older snapshot stayed open in the cluster for 60 s"
        time.sleep(0.2)

    with psycopg.connect(dsn) as reader:
        # The reader's snapshot is taken now (the deltas pending), but it
        # touches no shard yet: no lock of its keeps the reclaim away.
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        reader.execute("SELECT count(*) FROM tally.counters")

        assert step(conn, 0) == "flipped"  # the deltas' generation becomes inactive
        assert step(conn, 0) == "folded"
        assert step(conn, 1) == "folded"
        shards = conn.execute("SELECT DISTINCT x.shard_table::text FROM tally.shard_slices AS x ORDER BY 1").fetchall()
        assert len(shards) == 1, shards
        shard = shards[0][0]
        # The shard's drain on record: an old transaction, invisible to all.
        conn.execute("UPDATE tally.shards SET drained_xid = %s WHERE shard_table = %s::regclass", (old_xid, shard))
        assert conn.execute("SELECT tally._invisible_to_all(%s::xid8)", (old_xid,)).fetchone()[0]

        # Every slice drained: the next step reclaims (and flips). The slice
        # folds' transactions are newer than the reader's snapshot.
        assert step(conn, 0) == "flipped"
        assert (
            conn.execute("SELECT truncated_at FROM tally.shards WHERE shard_table = %s::regclass", (shard,)).fetchone()[
                0
            ]
            is None
        ), "the shard was truncated under a snapshot that still sees its deltas"
        assert reader.execute(total, (keys,)).fetchone()[0] == 300
        reader.execute("COMMIT")

    # Once nobody can see them (no older snapshot left in the cluster), the
    # shard is truncated by a later step.
    deadline = time.monotonic() + 60
    while not conn.execute(
        "SELECT truncated_at IS NOT NULL FROM tally.shards WHERE shard_table = %s::regclass", (shard,)
    ).fetchone()[0]:
        assert time.monotonic() < deadline, "the drained shard was not truncated within 60 s"
        step(conn, 0)
        step(conn, 1)
        time.sleep(0.1)
    assert conn.execute(total, (keys,)).fetchone()[0] == 300
