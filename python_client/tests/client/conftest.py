"""Fixtures of the client suite: ``side`` runs a test once with the sync
client and once with the async one (see sides.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .sides import AsyncSide, Side, SyncSide


@pytest.fixture(params=["sync", "async"])
def side(request: pytest.FixtureRequest) -> Iterator[Side]:
    if request.param == "sync":
        yield SyncSide()
        return
    s = AsyncSide()
    try:
        yield s
    finally:
        s.close()
