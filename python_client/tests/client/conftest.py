"""Fixtures of the client suite: ``side`` runs a test once with the sync
client and once with the async one (see sides.py)."""

from __future__ import annotations

from .sides import side

__all__ = ["side"]
