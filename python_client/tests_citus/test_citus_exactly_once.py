"""Exactly-once on Citus: an event id's claim lives beside its key, on the
worker that holds it, and commits with its delta there. Replays through
different connections, at once, single and in batches, count once."""

from __future__ import annotations

import threading

import psycopg


def test_replays_through_different_connections_count_once(citus_dsn: str, cconn: psycopg.Connection, name: str) -> None:
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    keys = [str(k) for k in range(40)]  # on both workers
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def replayer(batch: bool) -> None:
        try:
            with psycopg.connect(citus_dsn, autocommit=True) as conn:
                barrier.wait()
                applied = 0
                for round_ in range(3):
                    if batch:
                        (n,) = conn.execute(
                            "SELECT tally.increment_counters(array_fill(%s::text, ARRAY[40]), %s::text[],"
                            " array_fill(5::bigint, ARRAY[40]), NULL, %s::text[])",
                            (name, keys, [f"ev-{k}" for k in keys]),
                        ).fetchone()
                        applied += n
                    else:
                        for k in keys:
                            (ok,) = conn.execute(
                                "SELECT tally.increment_counter(%s, %s, 5, now(), %s)", (name, k, f"ev-{k}")
                            ).fetchone()
                            applied += ok
                    if round_ == 1:
                        conn.execute("CALL tally.compact()")
                results.append(applied)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=replayer, args=(i % 2 == 0,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    # every (key, event id) applied exactly once, by whichever connection won
    assert sum(results) == len(keys)
    for k in keys:
        assert cconn.execute("SELECT tally.counter_value(%s, %s)", (name, k)).fetchone()[0] == 5
    cconn.execute("CALL tally.compact()")
    for k in keys:
        assert cconn.execute("SELECT tally.counter_value(%s, %s)", (name, k)).fetchone()[0] == 5
    # a replay after the fold still finds its claim
    assert cconn.execute("SELECT tally.increment_counter(%s, '7', 5, now(), 'ev-7')", (name,)).fetchone()[0] is False
    # inside a caller's transaction (not delegated: planned on the coordinator) too
    with cconn.transaction():
        assert (
            cconn.execute("SELECT tally.increment_counter(%s, '8', 5, now(), 'ev-8')", (name,)).fetchone()[0] is False
        )
        assert cconn.execute("SELECT tally.increment_counter(%s, '8', 5, now(), 'ev-new')", (name,)).fetchone()[0]
    assert cconn.execute("SELECT tally.counter_value(%s, '8')", (name,)).fetchone()[0] == 10


def test_a_rolled_back_claim_leaves_the_id_free(cconn: psycopg.Connection, name: str) -> None:
    cconn.execute("SELECT tally.create_counter(%s, p_durable => true)", (name,))
    try:
        with cconn.transaction():
            assert cconn.execute("SELECT tally.increment_counter(%s, 'a', 1, now(), 'e1')", (name,)).fetchone()[0]
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert cconn.execute("SELECT tally.increment_counter(%s, 'a', 1, now(), 'e1')", (name,)).fetchone()[0] is True
    assert cconn.execute("SELECT tally.counter_value(%s, 'a')", (name,)).fetchone()[0] == 1


def test_poison_is_set_aside_on_the_workers_and_the_rest_folds(cconn: psycopg.Connection, name: str) -> None:
    """A key whose fold would leave the bigint range: its deltas go to
    tally.quarantine (on their worker), every other key folds exactly."""
    big = 9223372036854775807
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    cconn.execute("SELECT tally.increment_counter(%s, 'poison', %s)", (name, big))
    cconn.execute("SELECT tally.increment_counter(%s, 'poison', %s)", (name, big))
    for k in range(30):
        cconn.execute("SELECT tally.increment_counter(%s, %s, 3)", (name, str(k)))
    cconn.execute("CALL tally.compact()")
    for k in range(30):
        assert cconn.execute("SELECT tally.counter_value(%s, %s)", (name, str(k))).fetchone()[0] == 3
    rows = cconn.execute(
        "SELECT q.key, sum(q.delta::numeric) FROM tally.quarantine AS q"
        " JOIN tally.counters AS c ON c.id = q.counter_id WHERE c.name = %s GROUP BY 1",
        (name,),
    ).fetchall()
    assert rows == [("poison", 2 * big)]
    (status,) = cconn.execute("SELECT status FROM tally.health WHERE \"check\" = 'quarantine'").fetchone()
    assert status == "warn"
