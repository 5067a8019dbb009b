# Generated from python_client/tally/_router_async.py by .venv/bin/python scripts/async_to_sync.py: do not edit.
# Edit python_client/tally/_router_async.py, then run .venv/bin/python scripts/async_to_sync.py (make generate).
"""The connections of ``Tally``'s routing on Citus: where each key's
shard is, read through the caller's source, and connections of its own to
each node, kept idle between calls (what is routed and when a call is sent
again: ``tally.routing``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors as e
from psycopg.pq import TransactionStatus

from tally._concurrency import Lock, StateLock, Worker, join, spawn
from tally.routing import (
    CITUS,
    MOVED,
    OFF,
    PROBE,
    SHARDS,
    Node,
    PartialBatchError,
    Routes,
    Routing,
    answered,
    hashtext,
    node_conninfo,
)

__all__ = ["Router"]

T = TypeVar("T")
# A call through the caller's pool or connection: run(fn) is fn(conn)'s result.
Run = Callable[[Callable[[psycopg.Connection], Any]], Any]


class _Unsent(Exception):
    """No connection to the node could be had: nothing was sent."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _Lost(Exception):
    """The connection to the node was lost while a call was on it: it may have committed."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Router:
    """Where each key's shard is, and connections to each node.

    ``run`` is a call through the caller's pool or connection (the metadata
    is read there, and whatever is not routed is sent there); it must not
    hold the client itself, so an unclosed client can still be collected."""

    def __init__(self, config: Routing, run: Run, fn: str) -> None:
        self._config, self._run, self._fn = config, run, fn
        self._state = StateLock()  # over what follows; never held across a wait
        self._loading = Lock()  # one metadata read at a time
        self._routes = OFF
        self._due = 0.0  # time.monotonic() after which the next call reads the metadata again
        self._params: dict[str, str] = {}  # the caller's connection parameters
        self._prepare: int | None = 5  # and its prepare_threshold
        self._idle: dict[Node, list[psycopg.Connection]] = {}
        self._reading = False  # a metadata read under way in the background
        self._reader: Worker | None = None  # the last one started
        self.reads = 0  # metadata reads so far
        self._out: set[psycopg.Connection] = set()  # connections on a call now
        self._doomed: set[psycopg.Connection] = set()  # of those, the ones close() found out: closed on return

    # -- the metadata --------------------------------------------------------
    def routes(self) -> Routes:
        """Where the shards are. The first call reads it; when it is due
        again, a background thread reads it while the calls go on with the
        table they have (so a call never waits for the caller's pool, which
        may be out of reach: a coordinator down, say)."""
        with self._state:
            routes, due = self._routes, time.monotonic() >= self._due
            start = due and self.reads > 0 and not self._reading
            if start:
                self._reading = True
                self._due = time.monotonic() + self._config.refresh_every  # (again then if this read fails)
        if start:
            self._reader = spawn(self._read_again, "tally-routing")
        if not due or self.reads:
            return routes
        return self.refresh(only_if_due=True)

    def _read_again(self) -> None:
        try:
            self.refresh()
        except Exception:
            pass  # the table read before goes on routing; read again refresh_every later
        finally:
            with self._state:
                self._reading = False

    def refresh(self, only_if_due: bool = False) -> Routes:
        """Read where the shards are now; close the idle connections of nodes that left."""
        with self._loading:
            if only_if_due:
                with self._state:
                    if time.monotonic() < self._due:
                        return self._routes
            try:
                routes, params, prepare = self._run(self._read)
            except (e.InsufficientPrivilege, e.UndefinedTable, e.UndefinedObject):
                routes, params, prepare = OFF, self._params, self._prepare  # no metadata to read: nothing routed
            with self._state:
                self._routes, self._params, self._prepare = routes, params, prepare
                self._due = time.monotonic() + self._config.refresh_every
                self.reads += 1
                gone = [n for n in self._idle if n not in routes.nodes]
                closing = [c for n in gone for c in self._idle.pop(n)]
        for conn in closing:
            with contextlib.suppress(Exception):
                conn.close()
        return routes

    def expire(self) -> None:
        """Read the metadata again before the next routed call."""
        with self._state:
            self._due = 0.0

    @staticmethod
    def _read(conn: psycopg.Connection) -> tuple[Routes, dict[str, str], int | None]:
        params = conn.info.get_parameters()
        if conn.info.password:
            params["password"] = conn.info.password
        cur = conn.execute(CITUS)
        row = cur.fetchone()
        if not row or not row[0] or row[2] != hashtext(PROBE.encode()):
            return OFF, params, conn.prepare_threshold
        cur = conn.execute(SHARDS)
        shards = cur.fetchall()
        return Routes(shards, utf8=row[1] == "UTF8"), params, conn.prepare_threshold

    # -- connections ---------------------------------------------------------
    def _checkout(self, node: Node) -> psycopg.Connection:
        with self._state:
            idle = self._idle.get(node)
            if idle:
                conn = idle.pop()
                self._out.add(conn)
                return conn
            params, prepare = self._params, self._prepare
        conninfo = node_conninfo(params, node, self._config.connect_timeout)
        try:
            conn = psycopg.Connection.connect(conninfo, autocommit=True, prepare_threshold=prepare)
        except Exception as exc:
            raise _Unsent(exc) from exc
        with self._state:
            self._out.add(conn)
        return conn

    def _checkin(self, node: Node, conn: psycopg.Connection) -> None:
        """Keep ``conn`` for the next call, or close it. A lost connection
        says the node may be down or gone: its other idle connections are
        closed too, and the metadata is read again before the next call."""
        closing = [conn]
        with self._state:
            self._out.discard(conn)
            doomed = conn in self._doomed  # (out on a call when the router was closed)
            self._doomed.discard(conn)
            if conn.broken:
                closing += self._idle.pop(node, [])
                self._due = 0.0
            elif (
                not doomed
                and not conn.closed
                and conn.info.transaction_status == TransactionStatus.IDLE
                and node in self._routes.nodes
                and len(self._idle.get(node, ())) < self._config.max_idle
            ):
                self._idle.setdefault(node, []).append(conn)
                closing = []
        for c in closing:
            with contextlib.suppress(Exception):
                c.close()

    def _on(
        self,
        node: Node | None,
        fn: Callable[[psycopg.Connection], T],
        source: Run | None,
    ) -> T:
        """``fn(conn)`` on a connection to ``node``, or through the caller's source (None)."""
        if node is None:
            return (source or self._run)(fn)
        conn = self._checkout(node)
        try:
            return fn(conn)
        except Exception as exc:
            if conn.broken:
                raise _Lost(exc) from exc
            raise
        finally:
            self._checkin(node, conn)

    def close(self) -> None:
        """Wait for a metadata read under way; close every idle connection
        (later calls open new ones)."""
        with self._state:
            reader = self._reader
        if reader is not None:
            join(reader)
        with self._state:
            self._doomed |= self._out
            closing = [c for conns in self._idle.values() for c in conns]
            self._idle.clear()
        for conn in closing:
            with contextlib.suppress(Exception):
                conn.close()

    # -- a routed call -------------------------------------------------------
    def send(
        self,
        keys: Sequence[object],
        fn: Callable[[psycopg.Connection, list[int]], T],
        resend: bool,
        source: Run | None = None,
    ) -> list[T]:
        """``fn(conn, indices)`` once per node, ``indices`` those of ``keys``
        whose shard it holds, one node after another; what each returned.

        A part is sent again, once per call and wherever the metadata read
        again places its keys, after no connection could be had, after an
        error that says the node lost the shard (``MOVED``) if its keys now
        live elsewhere, and, when ``resend`` (the call cannot count twice),
        after its connection was lost. Otherwise the first failure ends the
        call: its error is raised when nothing was applied (or nothing is
        known to be); else ``PartialBatchError`` says what was."""
        routes = self.routes()
        queue = routes.split(keys)
        parts = len(queue)
        done: list[tuple[list[int], T]] = []
        retried = False
        # elements whose first attempt was lost (it may have committed) and
        # whose second has not succeeded: unknown, whatever the second said
        was_lost: set[int] = set()
        lost_error: BaseException | None = None
        while queue:
            node, idx = queue.pop(0)
            try:
                done.append((idx, self._on(node, lambda c, idx=idx: fn(c, idx), source)))
                was_lost.difference_update(idx)
                continue
            except _Unsent as exc:
                error: BaseException = exc.error
                unknown, moved = False, False
                again = True
            except _Lost as exc:
                error, unknown, moved = exc.error, True, False
                again = resend
                was_lost.update(idx)
                lost_error = lost_error or error
            except Exception as exc:
                error = exc
                unknown = not answered(exc)
                moved = not unknown and getattr(exc, "sqlstate", None) in MOVED
                again = node is not None and (moved or (unknown and resend))
            if moved:
                self.expire()
            if len(idx) < len(keys):  # the server numbers the elements of the part it got
                shown = ", ".join(str(i + 1) for i in idx[:20]) + (", ..." if len(idx) > 20 else "")
                where = f"{node[0]}:{node[1]}" if node else "the caller's pool or connection"
                error.add_note(f"{self._fn}: the part of the batch sent to {where} holds the batch's elements {shown}")
            if again and not retried:
                retried = True
                redo = self._again(keys, idx, error)
                # (after MOVED, only if the keys live elsewhere now)
                if redo and (not moved or any(n != node for n, _ in redo)):
                    queue = redo + queue
                    parts += len(redo) - 1
                    continue
            if not unknown and was_lost & set(idx) and lost_error is not None and lost_error is not error:
                # sent again after a lost attempt, and failed: whether the
                # first attempt committed is still unknown
                error.add_note(f"{self._fn}: sent again after its connection was lost ({lost_error}), and failed")
                unknown = True
            lost = sorted((set(idx) if unknown else set()) | was_lost)
            if not done and not (lost and parts > 1):
                if unknown and lost_error is not None and lost_error is not error:
                    raise lost_error from error  # (a lost connection: it may have been applied)
                raise error
            applied = sorted(i for part, _ in done for i in part)
            raise PartialBatchError(
                f"{self._fn}: the batch was split over {parts} nodes: {len(applied)} of {len(keys)} elements"
                f" committed, {len(lost)} unknown (connection lost), the rest not applied: {error}",
                applied,
                lost,
                error,
            ) from error
        return [result for _, result in done]

    def _again(
        self, keys: Sequence[object], idx: list[int], error: BaseException
    ) -> list[tuple[Node | None, list[int]]]:
        """The metadata read again, and where it places the keys of ``idx``
        now (nothing if it could not be read: a note on ``error`` says why)."""
        try:
            routes = self.refresh()
        except Exception as failed:
            error.add_note(f"{self._fn}: reading where the shards are again failed too: {failed}")
            return []
        return [(n, [idx[j] for j in sub]) for n, sub in routes.split([keys[i] for i in idx])]
