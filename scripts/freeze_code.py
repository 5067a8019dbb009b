#!/usr/bin/env python3
"""Freeze the code of a revision that is about to stop being the head.

    scripts/freeze_code.py 0002

renders every file under sql/{functions,procedures,views} (with its
`#include plpython/...` lines resolved) into migrations/code/0002/, so the
revision keeps installing exactly the code it shipped with; then change that
revision's `apply_code()` call to `apply_code("0002")`.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "migrations"))

import tally_code  # noqa: E402


def main() -> None:
    rev = sys.argv[1]
    out = tally_code.FROZEN_DIR / rev
    if out.exists():
        sys.exit(f"freeze_code: {out} exists; a frozen revision never changes")
    for path in tally_code.code_files():
        target = out / path.relative_to(tally_code.SQL_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(tally_code.render(path).rstrip("\n") + "\n")
    grants = tally_code.SQL_DIR / "grants.sql"
    if grants.exists():
        (out / "grants.sql").write_text(grants.read_text())
    print(f"froze {len(list(out.rglob('*.sql')))} files into {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
