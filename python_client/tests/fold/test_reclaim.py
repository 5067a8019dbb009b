"""Drained delta shards are reclaimed by TRUNCATE, and only when that is
unobservable: never while a snapshot that predates the fold is alive, never
by waiting on a transaction that holds the shard; a shard folded in slices
only once every slice's deleting transaction is invisible to all (a reader
whose snapshot predates the slice folds keeps reading the same value, even
when the shard's recorded drain is old enough to truncate).
"""

from __future__ import annotations

import time

import psycopg


def shard_state(conn: psycopg.Connection) -> dict[str, tuple]:
    return {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT shard_table::text, drained_xid IS NOT NULL, truncated_at IS NOT NULL,"
            " pg_relation_filenode(shard_table) FROM tally.shards"
        )
    }


def value(conn: psycopg.Connection, key: str = "k") -> int:
    return conn.execute("SELECT tally.counter_value('rc', %s)", (key,)).fetchone()[0]


def test_compact_truncates_drained_shards(conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('rc')")
    conn.execute("SELECT tally.create_counter('rc_durable', p_durable => true)")
    for i in range(100):
        conn.execute("SELECT tally.increment_counter('rc', 'k', %s)", (i,))
        conn.execute("SELECT tally.increment_counter('rc_durable', 'k', %s)", (i,))
    before = shard_state(conn)
    conn.execute("CALL tally.compact()")  # drains, then reclaims once no snapshot can see the rows
    conn.execute("CALL tally.compact()")
    after = shard_state(conn)
    truncated = [s for s, (_, was_truncated, node) in after.items() if was_truncated and node != before[s][2]]
    assert any("fast" in s for s in truncated) and any("durable" in s for s in truncated), truncated
    assert value(conn) == sum(range(100))
    # One session wrote: one fast and one durable shard, each drained by one
    # fold (100 deltas < p_max_deltas) and truncated once.
    modes = dict(conn.execute("SELECT mode, count(*) FROM tally.fold_runs GROUP BY mode"))
    assert modes == {"delete": 2, "truncate": 2}, modes


def test_an_older_snapshot_holds_truncation_back_and_reads_stay_consistent(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('rc')")
    for _ in range(50):
        conn.execute("SELECT tally.increment_counter('rc', 'k', 2)")
    with psycopg.connect(dsn, autocommit=True) as reader:
        reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        assert value(reader) == 100  # its snapshot: everything still pending
        for _ in range(3):
            conn.execute("CALL tally.compact()")
        # Folded meanwhile, but nothing that reader could still see was truncated:
        assert conn.execute("SELECT count(*) FROM tally.fold_runs WHERE mode = 'truncate'").fetchone()[0] == 0
        drained = conn.execute("SELECT count(*) FROM tally.shards WHERE drained_xid IS NOT NULL").fetchone()[0]
        assert drained == 1  # the one shard this session wrote to
        assert value(reader) == 100  # the old snapshot still adds up: pending rows, old totals
        reader.execute("COMMIT")
    conn.execute("CALL tally.compact()")
    assert conn.execute("SELECT count(*) FROM tally.fold_runs WHERE mode = 'truncate'").fetchone()[0] == 1
    assert value(conn) == 100


def test_a_transaction_holding_a_shard_is_not_waited_for(dsn: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('rc')")
    for _ in range(10):
        conn.execute("SELECT tally.increment_counter('rc', 'k')")
    with psycopg.connect(dsn, autocommit=True) as holder:
        # READ COMMITTED: no snapshot kept between statements, but the locks
        # taken by the read are held until the transaction ends.
        holder.execute("BEGIN")
        assert value(holder) == 10
        t0 = time.monotonic()
        conn.execute("CALL tally.compact()")
        elapsed = time.monotonic() - t0
        assert elapsed < 5, f"compact waited {elapsed:.1f}s on a reader"
        assert conn.execute("SELECT count(*) FROM tally.fold_runs WHERE mode = 'truncate'").fetchone()[0] == 0
        holder.execute("COMMIT")
    conn.execute("CALL tally.compact()")
    assert conn.execute("SELECT count(*) FROM tally.fold_runs WHERE mode = 'truncate'").fetchone()[0] == 1
    assert value(conn) == 10


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
