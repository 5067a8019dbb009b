"""Poison: deltas whose fold would overflow bigint are set aside
(tally.quarantine), whatever a writer sends, inside one fold chunk, at a
chunk boundary or across shards, and everything else keeps folding
exactly; nothing is lost (folded + set aside = sent).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import psycopg
import workers
from load import check_exact, keep_everything, run_load
from psycopg.conninfo import conninfo_to_dict, make_conninfo

BIGINT_MAX = 9223372036854775807


@contextlib.contextmanager
def login(admin: psycopg.Connection, dsn: str, *roles: str) -> Iterator[psycopg.Connection]:
    """A connection as a fresh LOGIN role that is a member of `roles` only."""
    name = f"tally_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE ROLE {name} LOGIN IN ROLE {', '.join(roles)}")
    try:
        with psycopg.connect(make_conninfo(**{**conninfo_to_dict(dsn), "user": name}), autocommit=True) as c:
            yield c
    finally:
        db = admin.info.dbname
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND datname = %s", (name, db)
        )
        admin.execute(f"DROP OWNED BY {name}")
        admin.execute(f"DROP ROLE {name}")


def health(conn: psycopg.Connection) -> dict[str, tuple[str, str]]:
    return {c: (s, r) for c, s, r in conn.execute('SELECT "check", status, reason FROM tally.health').fetchall()}


def test_overflow_inside_one_chunk_is_set_aside_and_the_rest_folds(conn: psycopg.Connection, dsn: str) -> None:
    """The issue's reproduction as tally_writer: over the whole shard the
    poison key sums to 0, but the first chunk of 100,000 deltas holds two
    bigint-max deltas: before, every fold re-raised 22003 forever."""
    conn.execute("SELECT tally.create_counter('c')")
    with login(conn, dsn, "tally_writer") as w:
        w.execute(
            "SELECT tally.increment_counters("
            " array_fill('c'::text, ARRAY[100000]), array_fill('w'::text, ARRAY[100000]),"
            " ARRAY[9223372036854775807, 9223372036854775807]::bigint[] || array_fill(0::bigint, ARRAY[99998]))"
        )
        w.execute(
            "SELECT tally.increment_counters(array_fill('c'::text, ARRAY[2000]), array_fill('w'::text, ARRAY[2000]),"
            " ARRAY[-9223372036854775807, -9223372036854775807]::bigint[] || array_fill(0::bigint, ARRAY[1998]))"
        )
        # legitimate increments beside it, in the same bulk shard and elsewhere
        w.execute(
            "SELECT tally.increment_counters(array_fill('c'::text, ARRAY[3000]),"
            " array(SELECT 'k' || (g % 10) FROM generate_series(1, 3000) AS g), array_fill(1::bigint, ARRAY[3000]))"
        )
        w.execute("SELECT tally.increment_counter('c', 'single', 5)")
    # chunks of 100,000 deltas (the issue's; the default bound is larger,
    # and one chunk of the whole shard would net the key to 0, no overflow)
    conn.execute("CALL tally.compact(100000)")
    assert conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0
    values = dict(conn.execute("SELECT key, value FROM tally.totals").fetchall())
    assert {k: v for k, v in values.items() if k != "w"} == {**{f"k{i}": 300 for i in range(10)}, "single": 5}
    # every delta of the poison key is kept, none counted twice: folded + set aside = sent
    folded = values.get("w", 0)
    n, total = conn.execute("SELECT count(*), sum(delta) FROM tally.quarantine WHERE key = 'w'").fetchone()
    assert folded + int(total) == 0
    # the chunk that overflowed held 100,000 deltas of the key, the next 2,000:
    # each chunk's deltas of that key are set aside whole, zeros included
    assert n == 102_000
    assert health(conn)["quarantine"][0] == "warn"
    assert (
        conn.execute("SELECT count(*) FROM tally.fold_runs WHERE mode = 'quarantine' AND outcome = 'ok'").fetchone()[0]
        == 2
    )
    # and it keeps folding
    conn.execute("SELECT tally.increment_counter('c', 'after', 1)")
    conn.execute("CALL tally.compact()")
    assert conn.execute("SELECT tally.counter_value('c', 'after')").fetchone()[0] == 1


def test_overflow_at_a_chunk_boundary_and_across_shards(conn: psycopg.Connection, dsn: str) -> None:
    """bigint-max deltas of one key as the last row of one chunk and the first
    of the next, and in two shards (two sessions): each chunk folds what
    fits, sets aside what does not; the sum of folded and set aside is what
    was sent."""
    conn.execute("SELECT tally.create_counter('b', '{minute,day}')")
    conn.execute(
        "SELECT tally.increment_counters(array_fill('b'::text, ARRAY[1001]),"
        " array(SELECT CASE WHEN g = 1000 THEN 'p' ELSE 'q' || (g % 7) END FROM generate_series(1, 1001) AS g),"
        " array(SELECT CASE WHEN g = 1000 THEN 9223372036854775807 ELSE 1 END FROM generate_series(1, 1001) AS g))"
    )
    conn.execute("SELECT tally.increment_counter('b', 'p', 9223372036854775807)")
    others = []
    while not others or others[-1].info.backend_pid % 3 == conn.info.backend_pid % 3:
        others.append(psycopg.connect(dsn, autocommit=True))  # until one writes to another per-worker shard
    others[-1].execute("SELECT tally.increment_counter('b', 'p', 9223372036854775807)")
    for c in others:
        c.close()
    conn.execute("CALL tally.compact(1000)")  # chunks of 1,000: the bulk batch's row 1000 ends the first
    assert conn.execute("SELECT count(*) FROM tally.delta").fetchone()[0] == 0
    values = dict(
        conn.execute(
            "SELECT t.key, t.value FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id"
            " WHERE c.name = 'b'"
        ).fetchall()
    )
    assert {k: v for k, v in values.items() if k != "p"} == {
        f"q{i}": sum(1 for g in range(1, 1002) if g != 1000 and g % 7 == i) for i in range(7)
    }
    quarantined = conn.execute("SELECT coalesce(sum(delta), 0) FROM tally.quarantine WHERE key = 'p'").fetchone()[0]
    assert values.get("p", 0) + int(quarantined) == 3 * BIGINT_MAX
    assert values.get("p", 0) == BIGINT_MAX  # the first one folds; the two that would overflow are set aside
    day = conn.execute("SELECT value FROM tally.rollup_day WHERE key = 'p'").fetchone()[0]
    assert day == BIGINT_MAX


COUNTERS = ["views_fast", "follows_durable"]


def setup_counters(conn: psycopg.Connection) -> None:
    conn.execute("SELECT tally.create_counter('views_fast')")
    conn.execute("SELECT tally.create_counter('follows_durable', p_durable => true)")
    keep_everything(conn, COUNTERS)


def test_an_overflowing_delta_is_quarantined_and_everything_else_stays_exact(
    dsn: str, conn: psycopg.Connection
) -> None:
    setup_counters(conn)
    deadlocks_before = workers.deadlocks(conn)

    def poison() -> None:
        with psycopg.connect(dsn, autocommit=True) as c:
            time.sleep(1.0)
            c.execute("SELECT tally.increment_counter('views_fast', 'poison', 9223372036854775807)")
            time.sleep(0.5)
            # Folding this one would overflow the key's total: set aside, not wedged.
            c.execute("SELECT tally.increment_counter('views_fast', 'poison', 1)")
            c.execute("SELECT tally.increment_counter('follows_durable', 'poison', -9223372036854775807)")
            c.execute("SELECT tally.increment_counter('follows_durable', 'poison', -9223372036854775807)")

    truth, _ = run_load(dsn, COUNTERS, writers=8, iterations=500, compactors=2, days_back=30, during=poison)
    check_exact(conn, truth, days_back=30)  # every other key exact, nothing pending
    quarantined = dict(conn.execute("SELECT counter, delta_sum FROM tally.quarantined WHERE key = 'poison'").fetchall())
    # Depending on which fold saw which delta, the first one may have been
    # folded before the second arrived; either way nothing is lost: what was
    # folded plus what was set aside is what was written.
    big = 9223372036854775807
    for counter, written in (("views_fast", big + 1), ("follows_durable", -2 * big)):
        assert counter in quarantined, quarantined
        value = conn.execute("SELECT tally.counter_value(%s, 'poison')", (counter,)).fetchone()[0]
        assert value + quarantined[counter] == written, (counter, value, quarantined[counter])
    assert conn.execute("""SELECT status FROM tally.health WHERE "check" = 'quarantine'""").fetchone()[0] == "warn"
    assert conn.execute("SELECT count(*) FROM tally.fold_runs WHERE outcome = 'failed'").fetchone()[0] == 0
    assert workers.deadlocks(conn) == deadlocks_before
