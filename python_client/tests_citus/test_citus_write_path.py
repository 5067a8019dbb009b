"""The local append on Citus: each node's own bodies of tally._append_local
and tally._append_local_batch, written from the shards it holds; what they
take (a key whose shard is on the node, a batch all of whose keys are) and
what they leave to the general path (any other key, REPEATABLE READ, what
the checks refuse); and reads of what either path wrote, through every
node."""

from __future__ import annotations

import re

import psycopg
import pytest

APPEND = "tally._append_local(text, text, bigint, timestamptz)"
APPEND_BATCH = "tally._append_local_batch(text[], text[], bigint[], timestamptz[], boolean)"


def body_shards(dsn: str, fn: str) -> set[int] | None:
    """The delta shards a node's body of `fn` names (None: the default body)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        (src,) = c.execute("SELECT prosrc FROM pg_proc WHERE oid = %s::regprocedure", (fn,)).fetchone()
    found = re.search(r"delta shards \{([0-9,]*)\}", src)
    return {int(s) for s in found.group(1).split(",") if s} if found else None


def placed_on(dsn: str) -> set[int]:
    """The delta shards whose placement is on the node of `dsn`."""
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "SELECT p.shardid FROM pg_dist_placement AS p JOIN pg_dist_shard AS s ON s.shardid = p.shardid"
            " JOIN pg_dist_local_group AS g ON g.groupid = p.groupid WHERE s.logicalrelid = 'tally.delta'::regclass"
        ).fetchall()
    return {r[0] for r in rows}


def keys_on(dsn: str, n: int, here: bool = True) -> list[str]:
    """n keys whose delta shard is on the node of `dsn` (or, here=False, is not)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "SELECT k FROM (SELECT 'wp' || g AS k, g FROM generate_series(1, 5000) AS g) AS s"
            " WHERE (get_shard_id_for_distribution_column('tally.delta', s.k) IN ("
            "   SELECT p.shardid FROM pg_dist_placement AS p"
            "   JOIN pg_dist_local_group AS l ON l.groupid = p.groupid)) = %s"
            " ORDER BY s.g LIMIT %s",
            (here, n),
        ).fetchall()
    assert len(rows) == n
    return [r[0] for r in rows]


def test_each_node_writes_bodies_of_its_own_shards(cconn: psycopg.Connection, node_dsns: list[str]) -> None:
    for i, dsn in enumerate(node_dsns):
        mine = placed_on(dsn)
        assert (i == 0) == (not mine), (i, mine)  # the coordinator holds no delta shard
        assert body_shards(dsn, APPEND) == mine
        assert body_shards(dsn, APPEND_BATCH) == mine
    # maintenance finds them current
    lines = [d for s, d in cconn.execute("SELECT step, detail FROM tally.maintain()").fetchall() if s == "local writes"]
    assert len(lines) == len(node_dsns) and all(line.endswith("(unchanged)") for line in lines), lines


def test_a_body_that_differs_from_what_the_generator_makes_is_written_again(
    cconn: psycopg.Connection, node_dsns: list[str]
) -> None:
    """An old body (left by an earlier version of tally, or changed by hand)
    is written again by maintenance, though its node's shards are the same."""
    worker = node_dsns[1]
    with psycopg.connect(worker, autocommit=True) as c:
        (src,) = c.execute("SELECT prosrc FROM pg_proc WHERE oid = %s::regprocedure", (APPEND,)).fetchone()
        with c.transaction():
            c.execute("SET LOCAL citus.enable_ddl_propagation = off")
            c.execute(
                f"CREATE OR REPLACE FUNCTION {APPEND.replace('(text, text, bigint, timestamptz)', '')}"
                "(p_counter text, p_key text, p_delta bigint, p_at timestamptz) RETURNS boolean LANGUAGE plpgsql"
                " SET search_path = pg_catalog, pg_temp AS $b$"
                + src.replace("RETURN NULL;", "RETURN NULL;  -- old", 1)
                + "$b$"
            )
    lines = [d for s, d in cconn.execute("SELECT step, detail FROM tally.maintain()").fetchall() if s == "local writes"]
    assert sum(line.endswith("(written)") for line in lines) == 1, lines
    with psycopg.connect(worker, autocommit=True) as c:
        (now,) = c.execute("SELECT prosrc FROM pg_proc WHERE oid = %s::regprocedure", (APPEND,)).fetchone()
    assert now == src


def test_the_local_append_takes_only_its_own_keys(cconn: psycopg.Connection, node_dsns: list[str], name: str) -> None:
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    worker = node_dsns[1]
    mine, theirs = keys_on(worker, 30), keys_on(worker, 30, here=False)
    expected: dict[str, int] = {}
    with psycopg.connect(worker, autocommit=True) as w:

        def append(key: str | None, delta: int = 5, counter: str = name):
            return w.execute(f"SELECT {APPEND.split('(')[0]}(%s, %s, %s, now())", (counter, key, delta)).fetchone()[0]

        def append_batch(keys: list[str], delta: int = 1):
            return w.execute(
                f"SELECT {APPEND_BATCH.split('(')[0]}(array_fill(%s::text, ARRAY[%s]), %s::text[],"
                " array_fill(%s::bigint, ARRAY[%s]), NULL, false)",
                (name, len(keys), keys, delta, len(keys)),
            ).fetchone()[0]

        assert append(mine[0]) is True
        expected[mine[0]] = 5
        # not here, or not for the local append: left to the general path,
        # nothing written
        assert append(theirs[0]) is None
        assert append(mine[1], counter=f"{name}_missing") is None
        assert append(None) is None
        assert append("x" * 2000) is None  # over the key limit: the general path says what is wrong
        with w.transaction():
            w.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            assert append(mine[2]) is None
            assert append_batch(mine[:3]) is None
        assert append_batch(mine[:20]) == 20
        for k in mine[:20]:
            expected[k] = expected.get(k, 0) + 1
        assert append_batch([*mine[:5], theirs[1]]) is None  # one key elsewhere: the whole batch goes general
        # the public calls through this worker, both paths, exact
        assert w.execute("SELECT tally.increment_counter(%s, %s, 7)", (name, theirs[2])).fetchone()[0] is True
        expected[theirs[2]] = 7
        assert (
            w.execute(
                "SELECT tally.increment_counters(array_fill(%s::text, ARRAY[20]), %s::text[],"
                " array_fill(3::bigint, ARRAY[20]))",
                (name, [*mine[20:30], *theirs[10:20]]),
            ).fetchone()[0]
            == 20
        )
        for k in [*mine[20:30], *theirs[10:20]]:
            expected[k] = expected.get(k, 0) + 3
    # read your writes, pending, through every node; then folded
    for dsn in node_dsns:
        with psycopg.connect(dsn, autocommit=True) as c:
            for key in [*mine, *theirs]:
                got = c.execute("SELECT tally.counter_value(%s, %s)", (name, key)).fetchone()[0]
                assert got == expected.get(key, 0), (dsn, key, got)
    cconn.execute("CALL tally.compact()")
    (total,) = cconn.execute(
        "SELECT coalesce(sum(t.value), 0) FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id"
        " WHERE c.name = %s",
        (name,),
    ).fetchone()
    assert total == sum(expected.values())


def test_a_bad_argument_through_a_worker_is_refused_by_the_general_path(
    node_dsns: list[str], cconn: psycopg.Connection, name: str
) -> None:
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    with psycopg.connect(node_dsns[1], autocommit=True) as w:
        with pytest.raises(psycopg.errors.UndefinedObject, match=r"tally\.increment_counter"):
            w.execute("SELECT tally.increment_counter(%s, 'k', 1)", (f"{name}_missing",))
        with pytest.raises(psycopg.errors.NullValueNotAllowed):
            w.execute("SELECT tally.increment_counter(%s, 'k', NULL)", (name,))
        # a batch with a NULL key, its other key on this worker: tally's own
        # error, naming the element, as on the coordinator (not Citus's
        # complaint about a NULL distribution value)
        (mine,) = keys_on(node_dsns[1], 1)
        for dsn in (node_dsns[1], node_dsns[0]):
            with psycopg.connect(dsn, autocommit=True) as c, pytest.raises(psycopg.Error) as bad:
                c.execute(
                    "SELECT tally.increment_counters(ARRAY[%s, %s], ARRAY[%s, NULL], ARRAY[1, 1]::bigint[])",
                    (name, name, mine),
                )
            assert bad.value.sqlstate == "22004" and "tally.increment_counters: element 2" in str(bad.value), (
                dsn,
                bad.value,
            )
    assert cconn.execute("SELECT tally.counter_value(%s, 'k')", (name,)).fetchone()[0] == 0


def test_a_local_batch_is_all_or_nothing(cconn: psycopg.Connection, node_dsns: list[str], name: str) -> None:
    """A batch whose keys all live on the worker that takes it: a bad element
    anywhere (an unknown counter, a NULL time among given times) leaves the
    local append to the checks, which refuse the whole batch; a good one is
    appended whole, with or without times."""
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    mine = keys_on(node_dsns[1], 10)
    batch = (
        "SELECT tally.increment_counters(%s::text[], %s::text[], array_fill(1::bigint, ARRAY[10]), %s::timestamptz[])"
    )
    with psycopg.connect(node_dsns[1], autocommit=True) as w:
        with pytest.raises(psycopg.errors.UndefinedObject, match=r"tally\.increment_counters"):
            w.execute(batch, ([name] * 9 + [f"{name}_missing"], mine, None))
        ats = ["2026-01-01T00:00:00Z"] * 9 + [None]
        with pytest.raises(psycopg.errors.NullValueNotAllowed, match=r"tally\.increment_counters"):
            w.execute(batch, ([name] * 10, mine, ats))
        assert cconn.execute("SELECT count(*) FROM tally.delta WHERE key = ANY (%s)", (mine,)).fetchone()[0] == 0
        assert w.execute(batch, ([name] * 10, mine, None)).fetchone()[0] == 10
        assert w.execute(batch, ([name] * 10, mine, ["2026-01-01T00:00:00Z"] * 10)).fetchone()[0] == 10
    assert sum(cconn.execute("SELECT tally.counter_value(%s, %s)", (name, k)).fetchone()[0] for k in mine) == 20
