"""What the benchmarks show and keep: the lines printed as cases finish,
the tables and targets at the end (targets.py judges against
bench/thresholds.toml), the chart, and the results files."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"


def say(msg: str) -> None:
    print(msg, flush=True)


def write_json(path: Path, res: dict) -> None:
    path.write_text(json.dumps(res, indent=2) + "\n")


def shown(rows: Iterable[dict], line: Callable[[dict], None]) -> list[dict]:
    """The rows of a case, each printed by ``line`` as it comes."""
    out = []
    for r in rows:
        line(r)
        out.append(r)
    return out
