"""What the clients and group commit do differently on threads and on
asyncio, and nothing else: each async name beside its sync twin.

The async sources (``tally.aio``, ``tally._coalescer_async``) use the
``A``/``a`` names; ``scripts/async_to_sync.py`` gives the sync modules the
names beside them, so the logic around them is written once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = [
    "AEvent",
    "ALock",
    "AStateLock",
    "AWorker",
    "Event",
    "Lock",
    "StateLock",
    "Worker",
    "ajoin",
    "aspawn",
    "join",
    "spawn",
]

# A lock callers queue for (one connection, one user at a time).
Lock = threading.Lock
ALock = asyncio.Lock

# The lock over state the callers and the flusher share, never held across
# a wait. Threads need one (reentrant: a finalizer may run on a thread that
# holds it); on one event loop a task runs undisturbed from one await to
# the next, so there is nothing to lock.
StateLock = threading.RLock


class AStateLock:
    """Nothing to do (see StateLock): never ``await`` while holding it."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# An event: ``wait(timeout)`` is True once it is set, False when the time ran out.
Event = threading.Event


class AEvent(asyncio.Event):
    """asyncio.Event whose ``wait`` takes a timeout, as threading.Event's does."""

    async def wait(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        if self.is_set() or timeout is None:
            return await super().wait()
        if timeout <= 0:
            return False
        try:
            async with asyncio.timeout(timeout):
                return await super().wait()
        except TimeoutError:
            return self.is_set()


# What runs in the background: the group commit's flusher.
Worker = threading.Thread
AWorker = asyncio.Task


def spawn(fn: Callable[[], object], name: str) -> threading.Thread:
    """Run ``fn`` in a daemon thread (it never keeps the process alive)."""
    worker = threading.Thread(target=fn, name=name, daemon=True)
    worker.start()
    return worker


def aspawn(fn: Callable[[], Coroutine[Any, Any, object]], name: str) -> asyncio.Task:
    """Run ``fn`` as a task of the running loop (cancelled when that loop ends)."""
    return asyncio.get_running_loop().create_task(fn(), name=name)


def join(worker: threading.Thread) -> None:
    """Wait until ``worker`` ended (at once if the caller is the worker itself)."""
    if worker is not threading.current_thread():
        worker.join()


async def ajoin(worker: asyncio.Task) -> None:
    """Wait until ``worker`` ended, as ``join`` does: its error is not the
    caller's, and cancelling the caller does not cancel it."""
    if worker is not asyncio.current_task():
        await asyncio.wait([worker])
