"""The sync client and its group commit flusher are generated from the async
sources (scripts/async_to_sync.py): the checked-in files are exactly what the
generator makes of them, and its --check mode says when one is not."""

from __future__ import annotations

import difflib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "async_to_sync.py"


def _generator():
    spec = importlib.util.spec_from_file_location("async_to_sync", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()


@pytest.mark.parametrize(("source", "target"), sorted(GENERATOR.SOURCES.items()))
def test_the_sync_file_is_what_the_generator_makes(source: str, target: str) -> None:
    want = GENERATOR.generate(source)
    have = (REPO / target).read_text()
    diff = "".join(difflib.unified_diff(have.splitlines(True), want.splitlines(True), target, "generated"))
    assert have == want, f"{target} is out of date: run .venv/bin/python scripts/async_to_sync.py\n{diff}"
    assert have.startswith(f"# Generated from {source} by .venv/bin/python scripts/async_to_sync.py: do not edit.\n")


def test_check_fails_on_a_stale_file_and_writing_mends_it(tmp_path: Path) -> None:
    # the package as it is (ruff sorts ``tally`` as first-party by it), and ruff's settings
    shutil.copytree(REPO / "python_client" / "tally", tmp_path / "python_client" / "tally")
    shutil.copy(REPO / "ruff.toml", tmp_path / "ruff.toml")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(SCRIPT), "--root", str(tmp_path), *args], capture_output=True, text=True
        )

    assert run("--check").returncode == 0
    client = tmp_path / "python_client/tally/client.py"
    client.write_text(client.read_text().replace("def value(", "def value_(", 1))
    r = run("--check")
    assert r.returncode == 1 and "python_client/tally/client.py is out of date" in r.stderr, r.stderr
    assert "def value_(" in client.read_text()  # --check writes nothing
    assert run().returncode == 0
    assert run("--check").returncode == 0
    assert client.read_text() == (REPO / "python_client/tally/client.py").read_text()


def test_the_rules_keep_comments_and_drop_what_is_async_only() -> None:
    source = (
        "# only in the async source  # sync:\n"
        "# sync: import weakref\n"
        "async def f(conn: AsyncConnection) -> None:\n"
        '    """Run by a task: ``aclose()`` or ``async with``."""\n'
        "    async with conn.transaction():  # the AsyncConnection's\n"
        "        await conn.execute('SELECT 1')\n"
    )
    assert GENERATOR.transform(source) == (
        "import weakref\n"
        "def f(conn: Connection) -> None:\n"
        '    """Run by a thread: ``close()`` or ``with``."""\n'
        "    with conn.transaction():  # the Connection's\n"
        "        conn.execute('SELECT 1')\n"
    )
