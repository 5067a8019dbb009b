"""The client's key-aware routing on Citus (``routing=Routing()``): the
client's hash picks the shard Citus picks; each increment, each node's part
of a batch and each per-key read runs on its key's node, shown from the
servers' side, for Tally, AsyncTally and group commit; a batch that fails on
one node after another committed says what was applied; a node that cannot
be reached is tried again where the metadata says, a lost connection is
sent again only where it cannot count twice; a shard moved under routed
writers is noticed and nothing is lost or counted twice.

How the servers show where each call ran: the client's sessions (and only
those) run with ``track_functions = all`` and Citus's
``citus.enable_stat_counters`` (options of the test's DSN, which the client
gives its node connections too). pg_stat_user_functions on a node then
counts the tally functions the client's sessions ran there; a call that
reached the wrong node is forwarded by Citus and runs in a Citus session on
the key's node, which counts nothing. citus_stat_counters counts every
connection a node's session opened or reused to another node: none, when no
call crossed nodes."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

import psycopg
import pytest
from client.sides import Side, run_threads, wait_for
from client.sides import side as side  # (the fixture)
from client.test_routing import sample_keys
from conftest import move_shard
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool
from tally import GroupCommit, PartialBatchError, Routing, Tally
from tally.routing import SHARDS, Routes, hashtext

FUNCTIONS = ("increment_counter", "increment_counters", "counter_value", "counter_series")
CROSSING = ("connection_establishment_succeeded", "connection_reused", "connection_establishment_failed")


# -- the servers' side ------------------------------------------------------------------
def key_nodes(conn: psycopg.Connection, keys: list[str]) -> dict[str, tuple[str, int]]:
    """The node of each key, as Citus places it."""
    rows = conn.execute(
        """
        SELECT u.k, n.nodename, n.nodeport
        FROM unnest(%s::text[]) AS u (k)
        JOIN pg_dist_placement AS p ON p.shardid = get_shard_id_for_distribution_column('tally.delta', u.k)
        JOIN pg_dist_node AS n ON n.groupid = p.groupid AND n.noderole = 'primary'
        """,
        (keys,),
    ).fetchall()
    return {k: (host, port) for k, host, port in rows}


def counted_dsn(dsn: str, app: str) -> str:
    """``dsn`` whose sessions count their function calls and their Citus connections."""
    return make_conninfo(dsn, application_name=app, options="-c track_functions=all -c citus.enable_stat_counters=on")


class Nodes:
    """Every node's DSN by address, and what the client's sessions did there."""

    def __init__(self, node_dsns: list[str], cconn: psycopg.Connection) -> None:
        rows = cconn.execute(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE isactive AND noderole = 'primary' ORDER BY groupid"
        ).fetchall()
        by_port = {int(conninfo_to_dict(d)["port"]): d for d in node_dsns}
        self.dsns = {(host, port): by_port[port] for host, port in rows}
        self.coordinator = rows[0]

    def functions(self) -> dict[tuple[str, int], Counter]:
        out = {}
        for node, dsn in self.dsns.items():
            with psycopg.connect(dsn, autocommit=True) as c:
                out[node] = Counter(
                    dict(
                        c.execute(
                            "SELECT funcname, calls FROM pg_stat_user_functions"
                            " WHERE schemaname = 'tally' AND funcname = ANY(%s)",
                            (list(FUNCTIONS),),
                        ).fetchall()
                    )
                )
        return out

    def crossings(self) -> dict[tuple[str, int], int]:
        """Connections each node's counted sessions opened or reused to other nodes."""
        out = {}
        for node, dsn in self.dsns.items():
            with psycopg.connect(dsn, autocommit=True) as c:
                out[node] = c.execute(
                    f"SELECT coalesce(sum({' + '.join(CROSSING)}), 0) FROM citus_stat_counters(0) AS s"
                    " JOIN pg_database AS d ON d.oid = s.database_id WHERE d.datname = current_database()"
                ).fetchone()[0]
        return out

    def sessions(self, app: str) -> int:
        n = 0
        for dsn in self.dsns.values():
            with psycopg.connect(dsn, autocommit=True) as c:
                n += c.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (app,)).fetchone()[
                    0
                ]
        return n

    def after(self, app: str, before: dict, want: dict) -> dict:
        """The function calls counted since ``before``, once every session
        of ``app`` ended (a session's counts reach pg_stat_user_functions
        when it ends) and they match ``want`` or stopped changing."""
        wait_for(lambda: self.sessions(app) == 0)
        last: dict = {}
        deadline = time.monotonic() + 20
        while True:
            now = self.functions()
            got = {node: +(now[node] - before[node]) for node in now}
            if got == want or (got == last and time.monotonic() > deadline):
                return got
            last = got
            time.sleep(0.5)


@pytest.fixture
def nodes(node_dsns: list[str], cconn: psycopg.Connection) -> Nodes:
    return Nodes(node_dsns, cconn)


# -- 1. the client's hash is Citus's shard choice ----------------------------------------------
def test_the_clients_hash_picks_the_shard_citus_picks(cconn: psycopg.Connection) -> None:
    keys = sample_keys(1500, seed=13)
    rows = cconn.execute(
        "SELECT k, hashtext(k), get_shard_id_for_distribution_column('tally.delta', k) FROM unnest(%s::text[]) AS k",
        (keys,),
    ).fetchall()
    assert len(rows) >= 1000
    shards = cconn.execute(
        "SELECT shardid, shardminvalue::integer, shardmaxvalue::integer FROM pg_dist_shard"
        " WHERE logicalrelid = 'tally.delta'::regclass"
    ).fetchall()
    assert len(shards) > 1
    routes = Routes(cconn.execute(SHARDS).fetchall())
    servers = key_nodes(cconn, keys)
    wrong_hash, wrong_shard, wrong_node = [], [], []
    for key, server_hash, server_shard in rows:
        h = hashtext(key.encode())
        if h != server_hash:
            wrong_hash.append(key)
        (shard,) = [s for s, lo, hi in shards if lo <= h <= hi]
        if shard != server_shard:
            wrong_shard.append(key)
        if routes.node(key) != servers[key]:
            wrong_node.append(key)
    assert not wrong_hash and not wrong_shard and not wrong_node, (wrong_hash[:3], wrong_shard[:3], wrong_node[:3])
    assert len(set(servers.values())) == 2  # both workers hold some of them
    assert any(not k.isascii() for k in keys) and max(len(k.encode()) for k in keys) == 512


# -- 2 and 3. every call on its key's node: Tally, AsyncTally, group commit ---------------------
@pytest.mark.parametrize("group", [False, True], ids=["direct", "group-commit"])
def test_each_call_runs_on_its_keys_node(
    side: Side, citus_dsn: str, cconn: psycopg.Connection, nodes: Nodes, name: str, group: bool
) -> None:
    """Increments (with event ids and replays; with group commit, sent
    together by many tasks or threads), batches split by node and reads,
    each on its key's node: each worker's sessions ran exactly the calls of
    its keys, the coordinator's none, and no session reached another node.
    Every value is the ground truth's."""
    cconn.execute("SELECT tally.create_counter(%s, '{hour,day}')", (name,))
    keys = [f"{name}-{i}" for i in range(18)] + ["ключ-1", "鍵-2", "🙂-3", "long-" + "x" * 300]
    where = key_nodes(cconn, keys)
    assert len(set(where.values())) == 2 and nodes.coordinator not in where.values()
    app = "tally_route_" + uuid.uuid4().hex[:8]
    before = nodes.functions()
    crossed = nodes.crossings()
    truth: Counter = Counter()
    want = {node: Counter() for node in nodes.dsns}

    def calls(fn: str, node: tuple[str, int], n: int = 1) -> None:
        want[node][fn] += n

    with (
        side.pool(counted_dsn(citus_dsn, app), min_size=1, max_size=4) as pool,
        side.tally(pool, GroupCommit() if group else None, Routing()) as t,
    ):
        assert t.refresh_routing() == 2

        # single increments, many at once (with group commit: coalesced;
        # every one with an event id then, so each is one increment_counter call)
        def write(i: int) -> list[bool]:
            key = keys[i]
            out = []
            for j in range(1 + i % 3):
                eid = f"{i}-{j}" if group or j == 0 else None
                out.append(t.increment(name, key, i + 1, event_id=eid))
            return out

        done, errors = run_threads(len(keys), write)
        assert not errors, errors
        assert all(all(r) for r in done.values())
        for i, key in enumerate(keys):
            truth[key] += (1 + i % 3) * (i + 1)
            calls("increment_counter", where[key], 1 + i % 3)
        # a replay counts nothing
        assert t.increment(name, keys[0], 1, event_id="0-0") is False
        calls("increment_counter", where[keys[0]])

        # batches: one increment_counters call per node
        assert t.increment_many([name] * len(keys), keys, list(range(100, 100 + len(keys)))) == len(keys)
        eids = [f"b-{i}" for i in range(len(keys))]
        assert t.increment_many([name] * len(keys), keys, [7] * len(keys), event_ids=eids) == len(keys)
        assert t.increment_many([name] * len(keys), keys, [7] * len(keys), event_ids=eids) == 0
        for i, key in enumerate(keys):
            truth[key] += 100 + i + 7
        for node in set(where.values()):
            calls("increment_counters", node, 3)

        # reads
        now = datetime.now(UTC)
        for key in keys:
            assert t.value(name, key) == truth[key], key
            series = t.series(name, key, "hour", now - timedelta(hours=2), now + timedelta(hours=1))
            assert sum(b.value for b in series) == truth[key], key
            calls("counter_value", where[key])
            calls("counter_series", where[key])
        if group:
            stats = t.group_commit_stats
            assert stats.increments == sum(1 + i % 3 for i in range(len(keys))) + 1 and stats.pending == 0

    ran = nodes.after(app, before, {n: +c for n, c in want.items()})
    assert ran == {n: +c for n, c in want.items()}, (ran, want)
    assert ran[nodes.coordinator] == Counter()
    after = nodes.crossings()
    assert after == crossed, f"a session of the client reached another node: {crossed} -> {after}"
    # and through the coordinator, the same values
    got = cconn.execute("SELECT k, tally.counter_value(%s, k) FROM unnest(%s::text[]) AS k", (name, keys)).fetchall()
    assert dict(got) == dict(truth)


def test_without_routing_the_calls_cross_nodes(
    citus_dsn: str, cconn: psycopg.Connection, nodes: Nodes, name: str
) -> None:
    """What the test above sees when the client does not route: the calls,
    sent to the coordinator (in a transaction block, where Citus runs a
    function on the node it was sent to), reach the key's worker from
    there: the coordinator's session counts its connections to the workers,
    the workers' sessions of the client (none) count nothing."""
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    keys = [f"{name}-{i}" for i in range(8)]
    app = "tally_route_" + uuid.uuid4().hex[:8]
    before, crossed = nodes.functions(), nodes.crossings()
    with psycopg.connect(counted_dsn(citus_dsn, app), autocommit=True) as conn:
        t = Tally(conn)
        for key in keys:
            t.increment(name, key)
            assert t.value(name, key) == 1
    want = {n: Counter() for n in nodes.dsns}
    want[nodes.coordinator].update({"increment_counter": len(keys), "counter_value": len(keys)})
    assert nodes.after(app, before, want) == want
    after = nodes.crossings()
    assert after[nodes.coordinator] - crossed[nodes.coordinator] >= len(keys)


# -- a batch over nodes: all-or-nothing per node --------------------------------------------------
def test_a_batch_that_fails_on_one_node_says_what_the_other_applied(
    citus_dsn: str, cconn: psycopg.Connection, name: str
) -> None:
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    missing = name + "_later"
    keys = [f"{name}-{i}" for i in range(12)]
    where = key_nodes(cconn, keys)
    first, second = sorted(set(where.values()))  # the order the parts are sent in
    a = [k for k in keys if where[k] == first][:2]
    b = [k for k in keys if where[k] == second][:2]
    batch_keys = [b[0], a[0], b[1], a[1]]
    counters = [missing, name, missing, name]
    eids = [f"e{i}" for i in range(4)]
    with ConnectionPool(citus_dsn, min_size=1, max_size=2) as pool, Tally(pool, routing=Routing()) as t:
        with pytest.raises(PartialBatchError) as got:
            t.increment_many(counters, batch_keys, [1, 2, 3, 4], event_ids=eids)
        assert got.value.applied == [1, 3] and got.value.unknown == []
        assert got.value.error.sqlstate == "42704" and isinstance(got.value, psycopg.Error)
        assert [t.value(name, k) for k in a] == [2, 4]
        # with event ids, the same batch again applies what is missing
        cconn.execute("SELECT tally.create_counter(%s)", (missing,))
        assert [t.value(missing, k) for k in b] == [0, 0]
        assert t.increment_many(counters, batch_keys, [1, 2, 3, 4], event_ids=eids) == 2
        assert [t.value(c, k) for c, k in zip(counters, batch_keys, strict=True)] == [1, 2, 3, 4]
        # the first node's part fails: nothing applied, the node's own error
        with pytest.raises(psycopg.errors.UndefinedObject):
            t.increment_many([name + "_none", name], [a[0], b[0]], [1, 1])
        assert t.value(name, b[0]) == 0
        # increment_many_tx is never split: all-or-nothing across nodes
        with pool.connection() as conn, pytest.raises(psycopg.errors.UndefinedObject), conn.transaction():
            t.increment_many_tx(conn, [name, name + "_none"], [a[0], b[0]], [1, 1])
        assert t.value(name, a[0]) == 2
        # what the client can check is checked before the split: a bad
        # element refuses the whole batch, as unsplit
        for bad_key, bad_delta in ((None, 1), (b[1], None)):
            with pytest.raises(psycopg.errors.NullValueNotAllowed, match="element 2"):
                t.increment_many([name, name], [a[0], bad_key], [5, bad_delta])
        assert [t.value(name, k) for k in (a[0], b[1])] == [2, 0]


# -- a node that cannot be reached; a connection lost mid-call -------------------------------------
def test_a_node_that_cannot_be_reached_is_tried_again_where_the_metadata_says(
    side: Side, citus_dsn: str, cconn: psycopg.Connection, name: str
) -> None:
    """The client's table names a node that is gone (nothing listens there):
    the call is sent, once, where the metadata read again places the key;
    each increment counts once. Group commit too."""
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    keys = [f"{name}-{i}" for i in range(6)]
    gone = Routes([(-(2**31), 2**31 - 1, "127.0.0.1", 1)])  # every key on a node nothing listens on

    def stale(t) -> None:
        router = getattr(t, "_obj", t)._router
        router._routes, router._due = gone, float("inf")

    with side.pool(citus_dsn, min_size=1, max_size=2) as pool:
        for rounds, group in enumerate((None, GroupCommit()), 1):
            with side.tally(pool, group, Routing()) as t:
                t.refresh_routing()
                stale(t)
                assert t.increment(name, keys[0], 5) is True
                stale(t)
                assert t.increment_many([name] * 6, keys, [1] * 6) == 6
                stale(t)
                assert t.value(name, keys[0]) == 6 * rounds
    got = cconn.execute("SELECT k, tally.counter_value(%s, k) FROM unnest(%s::text[]) AS k", (name, keys)).fetchall()
    assert dict(got) == {k: 12 if k == keys[0] else 2 for k in keys}


def test_a_connection_lost_mid_call_is_sent_again_only_with_an_event_id(
    citus_dsn: str, cconn: psycopg.Connection, nodes: Nodes, name: str
) -> None:
    """The key's node terminates the session while the increment waits on a
    lock (so it was sent, and did not commit): without an event id the
    caller gets the error and nothing is sent again; with one it is sent
    again once, and counts once."""
    cconn.execute("SELECT tally.create_counter(%s)", (name,))
    key = f"{name}-k"
    node = key_nodes(cconn, [key])[key]
    (shard,) = cconn.execute("SELECT get_shard_id_for_distribution_column('tally.delta', %s::text)", (key,)).fetchone()
    app = "tally_route_" + uuid.uuid4().hex[:8]
    with (
        ConnectionPool(make_conninfo(citus_dsn, application_name=app), min_size=1, max_size=2) as pool,
        Tally(pool, routing=Routing()) as t,
        psycopg.connect(nodes.dsns[node], autocommit=True) as admin,
    ):
        for event_id in (None, "once"):
            with psycopg.connect(nodes.dsns[node]) as locker:
                locker.execute("SET citus.enable_manual_changes_to_shards = on")
                locker.execute(f"LOCK TABLE tally.delta_{shard} IN ACCESS EXCLUSIVE MODE")
                outcome = terminated_while_waiting(admin, app, partial(t.increment, name, key, 1, event_id=event_id))
                locker.commit()
            outcome["thread"].join(timeout=30)
            if event_id is None:
                assert isinstance(outcome["result"], psycopg.OperationalError), outcome
                assert t.value(name, key) == 0
            else:
                assert outcome["result"] is True, outcome
                assert t.value(name, key) == 1


def terminated_while_waiting(admin: psycopg.Connection, app: str, call: Callable[[], object]) -> dict:
    """Start ``call`` in a thread, terminate the session of ``app`` that
    waits on a lock on ``admin``'s node, and wait until the call returned or,
    sent again, waits on a new session. The dict gets the call's result or
    error once its thread (there too) ended."""
    outcome: dict = {}

    def waiting() -> list[int]:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND wait_event_type = 'Lock'", (app,)
        ).fetchall()
        return [r[0] for r in rows]

    def run() -> None:
        try:
            outcome["result"] = call()
        except Exception as exc:
            outcome["result"] = exc

    th = threading.Thread(target=run)
    th.start()
    wait_for(lambda: len(waiting()) == 1)
    (pid,) = waiting()
    admin.execute("SELECT pg_terminate_backend(%s::integer)", (pid,))
    wait_for(lambda: "result" in outcome or waiting() not in ([], [pid]))
    outcome["thread"] = th
    return outcome


# -- 4. a shard moved under routed writers -------------------------------------------------------
def test_a_shard_moved_under_routed_writers_is_noticed_and_stays_exact(
    citus_dsn: str, cconn: psycopg.Connection, nodes: Nodes, name: str
) -> None:
    """Writers of every kind (single increments, with and without event ids,
    group commit, batches) routed by key, one key's shard moved to the other
    worker under them (block_writes): the client reads the metadata again by
    itself and sends that key's calls to its new node; nothing is lost or
    counted twice, through the client and through the coordinator."""
    fast, durable = name, name + "_d"
    cconn.execute("SELECT tally.create_counter(%s)", (fast,))
    cconn.execute("SELECT tally.create_counter(%s, p_durable => true)", (durable,))
    keys = [f"{name}-{i}" for i in range(30)]
    hot = keys[0]
    (shard,) = cconn.execute("SELECT get_shard_id_for_distribution_column('tally.delta', %s::text)", (hot,)).fetchone()
    source = key_nodes(cconn, [hot])[hot]
    target = next(n for n in nodes.dsns if n not in (source, nodes.coordinator))

    def move(to: tuple[str, int], frm: tuple[str, int]) -> float:
        return move_shard(cconn, shard, frm, to)

    truth: Counter = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    acked = Counter()
    moved = False
    routing = Routing(refresh_every=0.5)
    try:
        with (
            ConnectionPool(citus_dsn, min_size=2, max_size=8) as pool,
            Tally(pool, routing=routing) as t,
            Tally(pool, group_commit=GroupCommit(), routing=routing) as g,
        ):

            def writer(seed: int) -> None:
                rnd = random.Random(seed)
                n = 0
                while not stop.is_set():
                    n += 1
                    counter = rnd.choice((fast, durable))
                    key = hot if rnd.random() < 0.4 else rnd.choice(keys)
                    kind = rnd.choice(("plain", "event", "group", "group-event", "batch"))
                    try:
                        if kind == "batch":
                            ks = [hot, *rnd.sample(keys, 4)]
                            t.increment_many([counter] * 5, ks, [2] * 5)
                            applied = [(k, 2) for k in ks]
                        else:
                            eid = f"{seed}-{n}" if kind.endswith("event") else None
                            client = g if kind.startswith("group") else t
                            ok = client.increment(counter, key, 3, event_id=eid)
                            assert ok is True
                            applied = [(key, 3)]
                    except BaseException as exc:
                        errors.append(exc)
                        return
                    with lock:
                        for k, d in applied:
                            truth[(counter, k)] += d
                        acked[seed] += 1

            def calls() -> int:
                with lock:
                    return sum(acked.values())

            threads = [threading.Thread(target=writer, args=(s,)) for s in range(4)]
            for th in threads:
                th.start()
            try:
                wait_for(lambda: calls() >= 300 or bool(errors), timeout=120)
                assert t._router.routes().node(hot) == source
                took = move(target, source)
                moved = True
                at_move = calls()
                # the client notices by itself (Routing.refresh_every) ...
                wait_for(lambda: t._router._routes.node(hot) == target and g._router._routes.node(hot) == target, 10)
                wait_for(lambda: calls() >= at_move + 500 or bool(errors), timeout=120)
            finally:
                stop.set()
                for th in threads:
                    th.join(timeout=60)
            assert not errors, errors[:3]
            print(f"\n  shard {shard} moved {source} -> {target} under routed writers in {took:.2f} s; {calls()} calls")
            # ... and from then on the key's calls run on its new node
            app = "tally_route_" + uuid.uuid4().hex[:8]
            before, crossed = nodes.functions(), nodes.crossings()
            with (
                ConnectionPool(counted_dsn(citus_dsn, app), min_size=1, max_size=2) as counted,
                Tally(counted, routing=Routing()) as c,
            ):
                for _ in range(20):
                    c.increment(fast, hot, 1)
                truth[(fast, hot)] += 20
            want = {n: Counter() for n in nodes.dsns}
            want[target]["increment_counter"] = 20
            assert nodes.after(app, before, want) == {n: +w for n, w in want.items()}
            assert nodes.crossings() == crossed
            # exact, through the client and through the coordinator
            for (counter, key), value in truth.items():
                assert t.value(counter, key) == value, (counter, key)
            cconn.execute("CALL tally.compact()")
            got = {
                (c, k): v
                for c, k, v in cconn.execute(
                    "SELECT c.name, t.key, t.value FROM tally.totals AS t"
                    " JOIN tally.counters AS c ON c.id = t.counter_id WHERE c.name IN (%s, %s)",
                    (fast, durable),
                ).fetchall()
            }
            assert got == dict(truth)
    finally:
        if moved:
            move(source, target)
        cconn.execute("SELECT * FROM tally.maintain()")
    assert key_nodes(cconn, [hot])[hot] == source


# -- not distributed: nothing routed ------------------------------------------------------
def test_on_a_plain_install_beside_citus_nothing_is_routed(name: str) -> None:
    dsn = os.environ.get("TALLY_CITUS_PLAIN_DSN")
    if not dsn:
        pytest.fail("TALLY_CITUS_PLAIN_DSN is not set: run the Citus suite with `make test-citus`")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT tally.create_counter(%s)", (name,))
    with ConnectionPool(dsn, min_size=1, max_size=2) as pool, Tally(pool, routing=Routing()) as t:
        assert t.refresh_routing() == 0
        t.increment(name, "k", 2)
        assert t.increment_many([name, name], ["k", "j"], [1, 1]) == 2
        assert t.value(name, "k") == 3
        assert not t._router._idle


def test_a_server_that_hashes_otherwise_is_not_routed_to(
    citus_dsn: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The map is read only from a server whose hashtext() of a fixed probe
    is the client's: otherwise (another byte order, say) every key would go
    to a node without its shard. Here the client's hash is made to differ."""
    import tally._router as router_module

    with ConnectionPool(citus_dsn, min_size=1, max_size=2) as pool, Tally(pool, routing=Routing()) as t:
        assert t.refresh_routing() > 0  # the same hash: the nodes are known
    monkeypatch.setattr(router_module, "hashtext", lambda data: hashtext(data) ^ 1)
    with psycopg.connect(citus_dsn, autocommit=True) as c:
        c.execute("SELECT tally.create_counter(%s)", (name,))
    with ConnectionPool(citus_dsn, min_size=1, max_size=2) as pool, Tally(pool, routing=Routing()) as t:
        assert t.refresh_routing() == 0
        t.increment(name, "k", 2)
        assert t.value(name, "k") == 2
        assert not t._router._idle
