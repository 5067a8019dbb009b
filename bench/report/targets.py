"""The targets a run is judged by: bench/thresholds.toml applied to its results."""

from __future__ import annotations

import operator
import tomllib
from pathlib import Path
from typing import Any

from bench.report import say

THRESHOLDS = Path(__file__).resolve().parents[1] / "thresholds.toml"
_OPS = {">=": operator.ge, ">": operator.gt, "<": operator.lt}


def thresholds(path: Path = THRESHOLDS) -> dict:
    return tomllib.loads(path.read_text())


def figure(res: Any, path: str) -> Any:
    """The value at ``path`` ("a.b.-1.c", "a.*.c") in the results; None if it is missing."""
    head, _, rest = path.partition(".")
    if head == "*":
        return [figure(v, rest) for v in res] if isinstance(res, list) else None
    try:
        value = res[int(head)] if isinstance(res, list) else res[head]
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return figure(value, rest) if rest else value


def _met(measured: Any, spec: dict) -> bool:
    if measured is None:
        return False
    if spec["op"] == "flat":  # the last of a list at most bound x its first, or its first + slack
        return bool(measured) and measured[-1] <= max(spec["bound"] * measured[0], measured[0] + spec["slack"])
    return bool(_OPS[spec["op"]](measured, spec["bound"]))


def judge(res: dict, groups: tuple[str, ...], limits: dict | None = None) -> list[dict]:
    """The targets of ``groups`` (tables of the thresholds file), in its order."""
    limits = limits or thresholds()
    out = []
    for group in groups:
        for spec in limits[group].values():
            fields = {k: figure(res, p) for k, p in spec.get("fields", {}).items()}
            measured = figure(res, spec["figure"])
            out.append(
                {
                    "target": spec["name"].format(bound=spec["bound"], **fields),
                    "measured": measured,
                    "met": _met(measured, spec),
                }
            )
    return out


def print_targets(targets: list[dict]) -> None:
    for t in targets:
        say(f"  [{'met ' if t['met'] else 'MISS'}] {t['target']}: {t['measured']}")
