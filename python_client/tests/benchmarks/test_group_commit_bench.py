"""The benchmark's Python client case alone (`python -m bench.run --only client`,
--quick): plain Tally.increment, group commit and redis-py INCR from 16
threads each store exactly what they acknowledged, the table and the targets
are printed, client.json is written, and only the bench's counter is dropped."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[3]


def test_bench_only_client_quick(dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    conn.execute("SELECT tally.create_counter('bench_mine_not_the_benchs')")
    bench = [str(REPO / ".venv" / "bin" / "python"), "-m", "bench.run"]
    r = subprocess.run(
        [*bench, "--dsn", dsn, "--quick", "--only", "client", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert not (tmp_path / "latest.json").exists()  # the full run's results are left alone
    res = json.loads((tmp_path / "client.json").read_text())
    client = res["client"]
    assert client["threads"] == 16
    cases = {c["case"]: c for c in client["cases"]}
    assert set(cases) == {"plain", "coalesced", "coalesced_keys", "redis"}
    for c in cases.values():
        assert c["tps"] > 0 and c["calls"] > 0 and c["exact"] and c["stored"] == c["calls"], c
    for name in ("coalesced", "coalesced_keys"):
        gc = cases[name]["group_commit"]
        assert gc["increments"] >= cases[name]["calls"] and gc["largest"] > 1 and gc["pending"] == 0
    assert client["ratios"]["coalesced_vs_plain"] == round(cases["coalesced"]["tps"] / cases["plain"]["tps"], 2)
    assert client["ratios"]["coalesced_vs_redis"] == round(cases["coalesced"]["tps"] / cases["redis"]["tps"], 2)
    lines = r.stdout.splitlines()
    header = next(line for line in lines if line.startswith("Python client, 16 threads of one process"))
    assert header.split()[-6:] == ["incr/s", "÷", "plain", "÷", "redis-py", "exact"]
    for c in cases.values():
        row = next(line for line in lines if line.startswith(c["label"] + " "))
        assert f"{c['tps']:,}" in row.split() and "yes" in row.split(), row
    assert sum(line.startswith(("  [met ", "  [MISS]")) for line in lines) == 2
    names = [n for (n,) in conn.execute("SELECT name FROM tally.counters ORDER BY name")]
    assert names == ["bench_mine_not_the_benchs"]
