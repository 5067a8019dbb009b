"""Routing on a single node, and what routing decides without a cluster:
PostgreSQL's hashtext() computed by the client is the server's; where the
shard table sends each key; when a routed call is sent again (the rules of
tally.routing, played against scripted nodes); and a client with routing on
an install that is not distributed sends everything through its pool or
connection, as without routing. On Citus: tests_citus/test_citus_routing.py."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import errors as e
from tally import GroupCommit, PartialBatchError, Routing
from tally._router import Router, _Unsent
from tally.routing import OFF, Routes, hashtext, node_conninfo

from .sides import Side, run_threads

LOW, HIGH = -(2**31), 2**31 - 1


def sample_keys(n: int, seed: int = 23) -> list[str]:
    """Keys of every length class lookup3 treats apart (0-11 trailing bytes,
    whole 12-byte blocks), ASCII, two- to four-byte UTF-8, and long ones."""
    rnd = random.Random(seed)
    alphabets = [
        [chr(c) for c in range(32, 127)],
        [chr(c) for c in range(0xA0, 0x800)],  # two bytes
        [chr(c) for c in range(0x3040, 0x30FF)] + [chr(c) for c in range(0x4E00, 0x4F00)],  # three
        [chr(c) for c in range(0x1F300, 0x1F650)],  # four
    ]
    keys = ["a", "ab", "abc", "abcd", "0", "42", "x" * 11, "x" * 12, "x" * 13, "x" * 24, "é", "🙂", "k" * 512]
    for i in range(n - len(keys)):
        size = rnd.choice([rnd.randint(1, 13), rnd.randint(14, 40), rnd.randint(41, 170)])
        if i % 4 == 0:
            keys.append("".join(rnd.choice(alphabets[0]) for _ in range(size)))
        else:
            mixed = [a for a in alphabets if rnd.random() < 0.6] or alphabets[1:]
            keys.append("".join(rnd.choice(rnd.choice(mixed)) for _ in range(size)))
    return [k for k in keys if len(k.encode()) <= 512]


def test_hashtext_is_the_servers(conn: psycopg.Connection) -> None:
    keys = sample_keys(2000)
    rows = conn.execute("SELECT k, hashtext(k) FROM unnest(%s::text[]) AS k", (keys,)).fetchall()
    assert len(rows) == len(keys) >= 1000
    wrong = [(k, h) for k, h in rows if hashtext(k.encode()) != h]
    assert not wrong, f"{len(wrong)} keys hash otherwise than hashtext(): {wrong[:3]}"
    assert hashtext(b"") == conn.execute("SELECT hashtext('')").fetchone()[0]


def test_routes_place_each_key_in_its_range() -> None:
    a, b = ("10.0.0.1", 5432), ("10.0.0.2", 5433)
    routes = Routes([(0, HIGH, *b), (LOW, -1, *a)])
    assert routes.on and routes.nodes == {a, b}
    for key in sample_keys(300):
        assert routes.node(key) == (a if hashtext(key.encode()) < 0 else b)
    # not routable: through the caller's source
    for key in (None, "", 42, "\ud800"):
        assert routes.node(key) is None
    assert not OFF.on and OFF.node("a") is None
    # a range no shard covers
    assert Routes([(0, HIGH, *b)]).node(next(k for k in sample_keys(50) if hashtext(k.encode()) < 0)) is None
    # another server encoding than UTF-8: ASCII keys only
    latin = Routes([(LOW, HIGH, *a)], utf8=False)
    assert latin.node("plain") == a and latin.node("café") is None
    # per node, in order, the caller's source last
    keys = ["x", None, "y", "z", ""]
    parts = routes.split(keys)
    assert parts[-1] == (None, [1, 4]) and sorted(i for _, idx in parts for i in idx) == list(range(5))
    assert [n for n, _ in parts[:-1]] == sorted(n for n, _ in parts[:-1])


def test_a_node_connection_string_is_the_callers_with_the_nodes_address() -> None:
    params = {"host": "/run/pg", "port": "6432", "dbname": "app", "user": "u", "password": "p w", "sslmode": "require"}
    got = psycopg.conninfo.conninfo_to_dict(node_conninfo(params, ("w1.internal", 5432), 5))
    assert got == {
        "host": "w1.internal",
        "port": "5432",
        "dbname": "app",
        "user": "u",
        "password": "p w",
        "sslmode": "require",
        "connect_timeout": "5",
    }
    params["connect_timeout"] = "2"
    assert "connect_timeout=2" in node_conninfo(params, ("w1", 1), 5)


def test_routing_settings_are_checked() -> None:
    for bad in ({"refresh_every": -1}, {"max_idle": -1}, {"connect_timeout": 0}):
        with pytest.raises(ValueError, match="out of range"):
            Routing(**bad)


# -- when a routed call is sent again: scripted nodes ---------------------------------------
A, B = ("a", 1), ("b", 2)
EVERYTHING_ON = {A: Routes([(LOW, HIGH, *A)]), B: Routes([(LOW, HIGH, *B)])}
HALVES = Routes([(LOW, -1, *A), (0, HIGH, *B)])
KEY_A = next(k for k in sample_keys(50) if hashtext(k.encode()) < 0)
KEY_B = next(k for k in sample_keys(50) if hashtext(k.encode()) >= 0)


def lost() -> Exception:
    return _LostMarker("server closed the connection unexpectedly")


class _LostMarker(psycopg.OperationalError):
    """A connection lost while a call was on it (the router sees conn.broken)."""


class Scripted(Router):
    """A router whose nodes answer from a script: node -> what each call there
    does, in turn (a value, or an exception: _Unsent for no connection, a
    _LostMarker for a connection lost after sending). refresh() moves to the
    next table of ``tables``."""

    def __init__(self, first: Routes, tables: list[Routes], script: dict) -> None:
        super().__init__(Routing(refresh_every=3600), lambda fn: fn(None), "T")
        self._routes, self._due, self.reads = first, float("inf"), 1
        self.tables, self.script, self.calls = tables, script, []

    def refresh(self, only_if_due: bool = False) -> Routes:
        self._routes = self.tables.pop(0)
        self.reads += 1
        return self._routes

    def _on(self, node, fn, source):
        self.calls.append(node)
        outcome = self.script[node].pop(0)
        if isinstance(outcome, _LostMarker):
            from tally._router import _Lost

            raise _Lost(outcome)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def refused() -> _Unsent:
    return _Unsent(psycopg.OperationalError("connection refused"))


def test_a_node_that_cannot_be_reached_is_tried_again_where_the_metadata_says() -> None:
    r = Scripted(EVERYTHING_ON[A], [EVERYTHING_ON[B]], {A: [refused()], B: [True]})
    assert r.send([KEY_A], lambda c, i: None, resend=False) == [True]
    assert r.calls == [A, B] and r.reads == 2
    # once: the node the metadata names cannot be reached either
    r = Scripted(EVERYTHING_ON[A], [EVERYTHING_ON[A]], {A: [refused(), refused()]})
    with pytest.raises(psycopg.OperationalError, match="connection refused"):
        r.send([KEY_A], lambda c, i: None, resend=False)
    assert r.calls == [A, A]


def test_a_lost_connection_is_sent_again_only_when_it_cannot_count_twice() -> None:
    r = Scripted(EVERYTHING_ON[A], [EVERYTHING_ON[A]], {A: [lost(), True]})
    with pytest.raises(_LostMarker):  # an increment without an event id: maybe applied, never resent
        r.send([KEY_A], lambda c, i: None, resend=False)
    assert r.calls == [A] and r.reads == 1
    r = Scripted(EVERYTHING_ON[A], [EVERYTHING_ON[A]], {A: [lost(), False]})
    assert r.send([KEY_A], lambda c, i: None, resend=True) == [False]  # event id or read: resent once
    assert r.calls == [A, A] and r.reads == 2


def test_a_call_lost_then_refused_when_sent_again_is_reported_as_maybe_applied() -> None:
    # an event-id increment: its first attempt lost (it may have committed),
    # the second refused: the caller hears of the lost one, not only of a
    # refusal that reads as "not applied"
    r = Scripted(EVERYTHING_ON[A], [EVERYTHING_ON[A]], {A: [lost(), e.QueryCanceled("statement timeout")]})
    with pytest.raises(_LostMarker) as got:
        r.send([KEY_A], lambda c, i: None, resend=True)
    assert isinstance(got.value.__cause__, e.QueryCanceled) and r.calls == [A, A]
    # a batch: the lost part's elements stay unknown after a failed second attempt
    keys = [KEY_B, KEY_A]
    r = Scripted(HALVES, [HALVES], {A: [1], B: [lost(), e.QueryCanceled("statement timeout")]})
    with pytest.raises(PartialBatchError) as batch:
        r.send(keys, lambda c, i: None, resend=True)
    assert batch.value.applied == [1] and batch.value.unknown == [0]


def test_an_answered_error_is_the_callers_unless_the_node_lost_the_shard() -> None:
    r = Scripted(EVERYTHING_ON[A], [], {A: [e.NumericValueOutOfRange("out of range")]})
    with pytest.raises(e.NumericValueOutOfRange):
        r.send([KEY_A], lambda c, i: None, resend=True)
    assert r.calls == [A] and r.reads == 1
    # the node lost the shard, and the metadata names another node: sent there
    r = Scripted(EVERYTHING_ON[A], [EVERYTHING_ON[B]], {A: [e.UndefinedTable("gone")], B: [True]})
    assert r.send([KEY_A], lambda c, i: None, resend=False) == [True]
    assert r.calls == [A, B]
    # the metadata still names that node: its error
    r = Scripted(EVERYTHING_ON[A], [EVERYTHING_ON[A]], {A: [e.UndefinedTable("gone")]})
    with pytest.raises(e.UndefinedTable):
        r.send([KEY_A], lambda c, i: None, resend=False)
    assert r.calls == [A] and r.reads == 2


def test_a_batch_that_fails_after_a_part_committed_says_what_was_applied() -> None:
    keys = [KEY_B, KEY_A, KEY_B, KEY_A]
    r = Scripted(HALVES, [], {A: [2], B: [e.UndefinedObject("no such counter")]})
    with pytest.raises(PartialBatchError) as got:
        r.send(keys, lambda c, i: None, resend=False)
    assert got.value.applied == [1, 3] and got.value.unknown == [] and isinstance(got.value.error, e.UndefinedObject)
    assert isinstance(got.value.__cause__, e.UndefinedObject) and "2 of 4 elements committed" in str(got.value)
    # the second part's connection lost: its elements are unknown
    r = Scripted(HALVES, [], {A: [2], B: [lost()]})
    with pytest.raises(PartialBatchError) as got:
        r.send(keys, lambda c, i: None, resend=False)
    assert got.value.applied == [1, 3] and got.value.unknown == [0, 2]
    # the first part fails: nothing was applied, its own error
    r = Scripted(HALVES, [], {A: [e.NumericValueOutOfRange("bad")], B: [2]})
    with pytest.raises(e.NumericValueOutOfRange):
        r.send(keys, lambda c, i: None, resend=False)
    assert r.calls == [A]


def test_a_due_read_runs_in_the_background_and_one_that_fails_keeps_the_table() -> None:
    """Once a table was read, reading it again never holds up a call: the
    caller's pool may be out of reach (the coordinator down), and the table
    read before goes on routing."""
    started, release = threading.Event(), threading.Event()
    runs = []

    def run(fn):
        runs.append(1)
        started.set()
        release.wait(10)
        raise psycopg.OperationalError("the coordinator is down")

    r = Router(Routing(refresh_every=0), run, "T")
    r._routes, r.reads = HALVES, 1
    t0 = time.monotonic()
    assert r.routes() is HALVES and r.routes() is HALVES  # neither waits; one read at a time
    assert started.wait(5) and time.monotonic() - t0 < 5 and len(runs) == 1
    release.set()
    r.close()  # waits for the read under way
    assert r.reads == 1 and r.routes() is HALVES
    r.close()


# -- a client with routing on a plain install ---------------------------------------------
@pytest.mark.parametrize("group", [False, True], ids=["direct", "group-commit"])
def test_routing_on_a_plain_install_goes_through_the_pool(side: Side, dsn: str, group: bool) -> None:
    with (
        side.pool(dsn, min_size=1, max_size=4) as pool,
        side.tally(pool, GroupCommit() if group else None, Routing(refresh_every=0)) as t,
    ):
        t.create_counter("c_plain")
        assert t.refresh_routing() == 0
        _, errors = run_threads(8, lambda i: [t.increment("c_plain", f"k{i % 3}", i + 1) for _ in range(5)])
        assert not errors
        assert t.increment("c_plain", "k0", event_id="e-1") is True
        assert t.increment("c_plain", "k0", event_id="e-1") is False
        assert t.increment_many(["c_plain"] * 3, ["k1", "k2", "k1"], [10, 20, 30]) == 3
        truth = {"k0": 5 * (1 + 4 + 7) + 1, "k1": 5 * (2 + 5 + 8) + 40, "k2": 5 * (3 + 6) + 20}
        assert {k: t.value("c_plain", k) for k in truth} == truth
        now = datetime.now(UTC)
        assert sum(b.value for b in t.series("c_plain", "k2", "hour", now - timedelta(hours=1), now)) == 65
    with side.connect(dsn, autocommit=True) as conn:  # a single connection: the same
        t = side.tally(conn, routing=Routing())
        assert t.value("c_plain", "k2") == 65 and t.refresh_routing() == 0
        t.close()
