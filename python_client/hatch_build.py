"""Build hook: ship the schema the migrations install inside the wheel.

Copies the repository's alembic.ini, migrations/, sql/ and plpython/ into
tally/_schema/ with the layout migrations/tally_code.py expects (ROOT/sql and
ROOT/plpython beside ROOT/migrations), so `tally migrate` works from an
installed wheel. An editable install gets none of it: `tally migrate` reads
the checkout's own files there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SCHEMA = ("alembic.ini", "migrations", "sql", "plpython")


class SchemaHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        repo = Path(self.root).resolve().parent
        missing = [name for name in SCHEMA if not (repo / name).exists()]
        if missing:
            raise RuntimeError(
                f"tally build: {', '.join(missing)} not found in {repo}; "
                "build the wheel from the repository (pip wheel ./python_client), not from an sdist"
            )
        for name in SCHEMA:
            build_data["force_include"][str(repo / name)] = f"tally/_schema/{name}"
