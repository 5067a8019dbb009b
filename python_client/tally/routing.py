"""Key-aware routing on Citus: ``Tally(..., routing=Routing())`` and
``AsyncTally`` send each per-key call to the node that holds its key.

On a distributed install ``tally.delta`` is hash-distributed by ``key``,
and every table with a key is colocated with it, so one node holds all of a
key's rows. Any node takes every per-key call, but a call sent to a node
that does not hold the key is forwarded by Citus to the one that does,
which costs both nodes (docs/scale-out.md). The client can spare that: it
reads where each shard of ``tally.delta`` lives (``pg_dist_shard``,
``pg_dist_placement``, ``pg_dist_node``), computes the key's hash as
PostgreSQL does (``hashtext``, below), and calls the same SQL function on a
connection of its own to that node.

What is routed, and how:

- ``increment()`` (without group commit), ``value()`` and ``series()``: to
  the key's node, one statement in autocommit (its own transaction).
- ``increment_many()``: split by node, one ``tally.increment_counters`` call
  per node, one after another. Each part is all-or-nothing on its node; the
  batch as a whole is not: a part that fails after another committed raises
  ``PartialBatchError``, which says which elements were applied. A batch that
  must be all-or-nothing across nodes goes through ``increment_many_tx`` on a
  connection of the caller's (Citus commits it on every node by two-phase
  commit).
- Group commit: each batch is split by node, each node's part sent as group
  commit sends a batch (``tally.coalesce``), on that node.
- Never routed: the ``*_tx`` variants (they run in the caller's transaction,
  on the caller's connection), ``create_counter``, ``top`` and ``compact``
  (the coordinator's, or over every shard).

Where the metadata comes from, and when it is read again: through the
caller's pool or connection, on the first routed call; then in the
background once ``Routing.refresh_every`` seconds passed, or a connection to
a node was lost (the calls go on with the table they have meanwhile, so
they do not need the coordinator once it was read); before a call is sent
again (below); and on ``refresh_routing()``. A table read before a shard
moved is only slower, never wrong: the node it names still takes the call
and Citus forwards it. When the metadata says tally is not distributed (no Citus, or a
plain install beside it), nothing is routed: every call goes through the
caller's pool or connection, as without routing.

When a call is sent again (once, after reading the metadata again):

- the node could not be connected to: nothing was sent;
- the node answered with an error that says it lost the key's shard (see
  ``MOVED``) and the metadata now names another node: a statement that
  failed was rolled back, nothing of it was applied;
- the connection was lost after the statement was sent, only for calls that
  cannot count twice: reads, and increments with an event id (a replay of an
  id applied before returns False, so such a retry may return False for an
  increment whose lost attempt had committed). An increment without an event
  id is never sent again after it was sent: its caller gets the error, as on
  a single connection. Group commit sends a part again only in the first
  case; any other failure goes to the callers of the transaction it hit.

This module is what the sync and async clients share: the settings, the hash,
the table of shards and nodes, and the connection string of a node. The
connections themselves are ``tally._router_async`` (``tally._router``
is generated from it).
"""

from __future__ import annotations

import struct
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import make_conninfo

__all__ = ["PartialBatchError", "Routing"]

# A node of the cluster, as pg_dist_node names it: (nodename, nodeport).
Node = tuple[str, int]


@dataclass(frozen=True)
class Routing:
    """How ``Tally(..., routing=Routing())`` / ``AsyncTally`` route per-key calls on Citus.

    ``refresh_every``: seconds after which where the shards are is read
    again, in the background (it is also read again after a node could not
    be reached or its connection was lost, and on ``refresh_routing()``). ``max_idle``: idle connections
    kept per node for the next calls. ``connect_timeout``: seconds to wait
    for a node's connection, when the caller's connection string sets none.
    """

    refresh_every: float = 30.0
    max_idle: int = 8
    connect_timeout: int = 5

    def __post_init__(self) -> None:
        if not 0 <= self.refresh_every <= 86_400:
            raise ValueError(f"Routing: refresh_every {self.refresh_every!r} is out of range: give 0 to 86400 seconds")
        if not 0 <= self.max_idle <= 1_000:
            raise ValueError(f"Routing: max_idle {self.max_idle!r} is out of range: give 0 to 1000")
        if not 1 <= self.connect_timeout <= 3_600:
            raise ValueError(
                f"Routing: connect_timeout {self.connect_timeout!r} is out of range: give 1 to 3600 seconds"
            )


class PartialBatchError(psycopg.Error):
    """A routed ``increment_many`` failed on one node after another node's part
    was sent: ``applied`` are the indices of the elements that were
    committed, ``unknown`` those whose connection was lost after they were
    sent (committed or not), every other element was not applied.
    ``error`` (also ``__cause__``) is the failing node's error.

    With event ids, sending the same batch again applies exactly what is
    missing."""

    def __init__(self, message: str, applied: list[int], unknown: list[int], error: BaseException) -> None:
        super().__init__(message)
        self.applied = applied
        self.unknown = unknown
        self.error = error


# -- the hash ---------------------------------------------------------------------------
# Citus puts a row of a hash-distributed table in the shard whose range
# holds the hash of its distribution column, computed by the column type's
# hash function: for text (deterministic collations, as tally's key has) that
# is PostgreSQL's hashtext(), Bob Jenkins' lookup3 hash over the bytes of
# the text in the server's encoding, as PostgreSQL's src/common/hashfn.c
# computes it on a little-endian machine, read as a signed 32-bit integer.
# Tested against the server's hashtext() and Citus's shard choice
# (python_client/tests_citus/test_citus_routing.py).

_M = 0xFFFFFFFF
_WORDS = struct.Struct("<3I")


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def hashtext(data: bytes) -> int:
    """PostgreSQL's ``hashtext()`` of a text whose bytes (server encoding) are ``data``."""
    n = len(data)
    a = b = c = (0x9E3779B9 + n + 3923095) & _M
    whole = n - n % 12
    for at in range(0, whole, 12):
        x, y, z = _WORDS.unpack_from(data, at)
        a, b, c = (a + x) & _M, (b + y) & _M, (c + z) & _M
        # mix
        a = ((a - c) & _M) ^ _rot(c, 4)
        c = (c + b) & _M
        b = ((b - a) & _M) ^ _rot(a, 6)
        a = (a + c) & _M
        c = ((c - b) & _M) ^ _rot(b, 8)
        b = (b + a) & _M
        a = ((a - c) & _M) ^ _rot(c, 16)
        c = (c + b) & _M
        b = ((b - a) & _M) ^ _rot(a, 19)
        a = (a + c) & _M
        c = ((c - b) & _M) ^ _rot(b, 4)
        b = (b + a) & _M
    # The last 0 to 11 bytes: the first eight as two little-endian words,
    # the rest above c's lowest byte (lookup3 keeps that one for the length).
    x, y, z = _WORDS.unpack(data[whole:].ljust(12, b"\0"))
    a, b, c = (a + x) & _M, (b + y) & _M, (c + (z << 8)) & _M
    # final
    c = ((c ^ b) - _rot(b, 14)) & _M
    a = ((a ^ c) - _rot(c, 11)) & _M
    b = ((b ^ a) - _rot(a, 25)) & _M
    c = ((c ^ b) - _rot(b, 16)) & _M
    a = ((a ^ c) - _rot(c, 4)) & _M
    b = ((b ^ a) - _rot(a, 14)) & _M
    c = ((c ^ b) - _rot(b, 24)) & _M
    return c - (1 << 32) if c & 0x80000000 else c


# -- where each key's shard is -----------------------------------------------------------
# Whether Citus is there at all (its catalogs cannot be named otherwise), and
# the server's encoding (the bytes a key is hashed as).
# (and the server's hashtext() of PROBE: a server that hashes otherwise than
# this client, say on another byte order, is not routed to)
PROBE = "tally routing: hashtext probe, 0123456789"
CITUS = (
    "SELECT to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL, current_setting('server_encoding'),"
    f" hashtext('{PROBE}')"
)
# tally.delta's shards, their hash ranges and the primary node of each
# (one placement each; the first if there were more). No rows: tally is not
# distributed here. Any role may read these catalogs.
SHARDS = """
SELECT DISTINCT ON (s.shardid) s.shardminvalue::integer, s.shardmaxvalue::integer, n.nodename, n.nodeport
FROM pg_catalog.pg_dist_shard AS s
JOIN pg_catalog.pg_dist_partition AS d ON d.logicalrelid = s.logicalrelid AND d.partmethod = 'h'
JOIN pg_catalog.pg_dist_placement AS p ON p.shardid = s.shardid AND p.shardstate = 1
JOIN pg_catalog.pg_dist_node AS n ON n.groupid = p.groupid AND n.noderole = 'primary' AND n.isactive
WHERE s.logicalrelid = to_regclass('tally.delta')
ORDER BY s.shardid, n.nodeid
"""

# SQLSTATEs of a node that no longer has what the call needs, as a node that
# lost the key's shard (or was taken out of the cluster) may answer: the
# metadata is read again, and the call sent to the node it names now, if
# that is another node.
MOVED = frozenset({"42P01", "42883", "3F000"})


class Routes:
    """Where the shard of each key is: the hash ranges of tally.delta's
    shards and the node of each. ``OFF`` routes nothing."""

    __slots__ = ("_ascii", "_maxs", "_mins", "_nodes", "nodes")

    def __init__(self, shards: Iterable[tuple[int, int, str, int]] = (), utf8: bool = True) -> None:
        rows = sorted(shards)
        self._mins = [r[0] for r in rows]
        self._maxs = [r[1] for r in rows]
        self._nodes: list[Node] = [(r[2], int(r[3])) for r in rows]
        self.nodes = frozenset(self._nodes)
        # Another server encoding than UTF-8: ASCII keys only (the same bytes
        # in every server encoding); the others go through the caller's source.
        self._ascii = not utf8

    @property
    def on(self) -> bool:
        """Whether anything is routed."""
        return bool(self._mins)

    def node(self, key: object) -> Node | None:
        """The node holding ``key``'s shard; None: through the caller's pool or connection."""
        if not self._mins or not isinstance(key, str) or not key:
            return None
        try:
            data = key.encode("ascii" if self._ascii else "utf-8")
        except UnicodeEncodeError:
            return None
        h = hashtext(data)
        i = bisect_right(self._mins, h) - 1
        if i < 0 or h > self._maxs[i]:
            return None
        return self._nodes[i]

    def split(self, keys: Sequence[object]) -> list[tuple[Node | None, list[int]]]:
        """The indices of ``keys`` per node, in order; the nodes in order, the caller's source (None) last."""
        parts: dict[Node | None, list[int]] = {}
        for i, key in enumerate(keys):
            parts.setdefault(self.node(key), []).append(i)
        return sorted(parts.items(), key=lambda p: (p[0] is None, p[0] or ("", 0)))


OFF = Routes()  # routes nothing


def node_conninfo(params: dict[str, str], node: Node, connect_timeout: int) -> str:
    """The connection string of ``node``: the caller's connection parameters
    (database, user, password, TLS, application name...) with the node's
    host and port."""
    p = {k: v for k, v in params.items() if k not in ("host", "hostaddr", "port")}
    p["host"], p["port"] = node[0], str(node[1])
    p.setdefault("connect_timeout", str(connect_timeout))
    return make_conninfo(**p)


def answered(exc: BaseException) -> bool:
    """The server answered the statement with an error and the session goes
    on: in autocommit the statement was rolled back, nothing of it applied.
    (Otherwise the connection was lost, the session ended (a terminated
    backend, a shutdown: 57P01..), or something failed on the client's side:
    it may have committed.)"""
    state = getattr(exc, "sqlstate", None)
    return isinstance(exc, psycopg.Error) and state is not None and state[:2] != "08" and state[:3] != "57P"
