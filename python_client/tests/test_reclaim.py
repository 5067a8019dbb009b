"""Drained delta shards are reclaimed by TRUNCATE, and only when that is
unobservable: never while a snapshot that predates the fold is alive, never
by waiting on a transaction that holds the shard."""

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
