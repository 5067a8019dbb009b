"""The benchmark (`python -m bench.run`, what `make bench` runs) in its --quick form
against a fresh migrated database: every case runs, stores exactly what it
committed, prints its tables, and cleans up only what it created."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[3]


def test_bench_quick_runs_every_case_and_cleans_up(dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    conn.execute("SELECT tally.create_counter('bench_mine_not_the_benchs')")
    bench = [str(REPO / ".venv" / "bin" / "python"), "-m", "bench.run"]
    r = subprocess.run(
        [*bench, "--dsn", dsn, "--quick", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "latest.json").read_text())
    cases = {c["case"]: c for c in res["single"]}
    assert set(cases) == {
        "naive_update",
        "upsert",
        "advisory_upsert",
        "tally_fast",
        "tally_durable",
        "tally_event_id",
        "tally_ceiling",
        "raw_unlogged_insert",
        "redis_incr",
        "redis_incr_aof",
    }
    for c in cases.values():
        assert c["tps"] > 0 and c["exact"], c
    assert res["batch"]["increments_per_s"] > 0 and res["batch"]["exact"]
    assert [f["case"] for f in res["fold_rate"]] == ["live (last minute)", "backfill (last year)"]
    assert res["lag"]["exact"]
    assert [(r["keys"], r["exact"]) for r in res["sustained"]] == [(10_000, True), (1_000_000, True)]
    assert all(r["in_per_s"] > 0 for r in res["sustained"]), res["sustained"]
    assert [h["events"] for h in res["history"]] == [1_000, 10_000]
    assert all(h["counter_value"] == h["count_star"] == h["events"] for h in res["history"])
    assert res["environment"]["cores"] and res["environment"]["postgres"].startswith("15")
    assert {t["target"] for t in res["targets"]} and res["ratios"]["fast_vs_naive"] > 0
    assert res["hot"]["exact"] and len(res["hot"]["rounds"]) == 1
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the tables
    lines = r.stdout.splitlines()
    header = next(line for line in lines if line.startswith("one increment per transaction, 4 clients"))
    assert header.split()[-8:] == ["incr/s", "÷", "naive", "÷", "raw", "÷", "Redis", "exact"]
    for c in cases.values():
        row = next(line for line in lines if line.startswith(c["label"] + " "))
        assert row.split()[-1] == "yes" and f"{c['tps']:,}" in row.split(), row
    assert any(line.startswith("history (events)") for line in lines)
    assert sum(line.startswith("  [met ") or line.startswith("  [MISS]") for line in lines) == len(res["targets"])
    # only what the bench created is gone
    names = [n for (n,) in conn.execute("SELECT name FROM tally.counters ORDER BY name")]
    assert names == ["bench_mine_not_the_benchs"]
    assert conn.execute("SELECT to_regnamespace('tally_bench_tables')").fetchone()[0] is None


def test_bench_only_single_prints_both_hot_path_ratios(dsn: str, conn: psycopg.Connection, tmp_path: Path) -> None:
    bench = [str(REPO / ".venv" / "bin" / "python"), "-m", "bench.run"]
    r = subprocess.run(
        [*bench, "--dsn", dsn, "--quick", "--only", "single", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "single.json").read_text())
    tps = {c["case"]: c["tps"] for c in res["single"]}
    assert set(tps) == {
        "naive_update",
        "upsert",
        "advisory_upsert",
        "tally_fast",
        "tally_durable",
        "tally_event_id",
        "tally_ceiling",
        "raw_unlogged_insert",
    }
    assert all(c["exact"] for c in res["single"]), res["single"]
    assert res["ratios"]["fast_vs_naive"] == round(tps["tally_fast"] / tps["naive_update"], 2)
    # the hot-path ratios: the interleaved round (one in --quick) after the single pass
    (round_,) = res["hot"]["rounds"]
    assert list(round_) == ["naive_update", "tally_fast", "tally_ceiling", "raw_unlogged_insert"]
    assert res["hot"]["exact"] and all(v > 0 for v in round_.values()), res["hot"]
    h = res["hot"]["ratios"]
    assert h["fast_vs_naive"] == round(round_["tally_fast"] / round_["naive_update"], 2)
    assert h["fast_vs_raw_insert"] == round(round_["tally_fast"] / round_["raw_unlogged_insert"], 2)
    assert h["ceiling_vs_raw_insert"] == round(round_["tally_ceiling"] / round_["raw_unlogged_insert"], 2)
    assert h["fast_vs_ceiling"] == round(round_["tally_fast"] / round_["tally_ceiling"], 2)
    lines = r.stdout.splitlines()
    hot = next(line for line in lines if line.startswith("hot path, tally.increment_counter (fast), median of 1 "))
    assert f"{h['fast_vs_naive']:.2f}x the naive UPDATE (target >= 10x)" in hot, hot
    assert f"{h['fast_vs_raw_insert']:.2f}x the raw unlogged INSERT (target >= 0.60x)" in hot, hot
    assert [t["measured"] for t in res["targets"]][:2] == [h["fast_vs_naive"], h["fast_vs_raw_insert"]]
    assert [t["target"] for t in res["targets"]] == [
        "fast >= 10x naive UPDATE",
        "fast >= 60% of raw unlogged INSERT",
        "durable >= 5x naive UPDATE",
    ]
    assert sum(line.startswith("  [met ") or line.startswith("  [MISS]") for line in lines) == 3
    assert not (tmp_path / "latest.json").exists()
    assert conn.execute("SELECT count(*) FROM tally.counters WHERE name LIKE 'bench%'").fetchone()[0] == 0
    assert conn.execute("SELECT to_regnamespace('tally_bench_tables')").fetchone()[0] is None


def test_compactor_study_small_runs_every_part(dsn: str, tmp_path: Path) -> None:
    study = [str(REPO / ".venv" / "bin" / "python"), "-m", "bench.compactor"]
    r = subprocess.run(
        [
            *study,
            "--dsn",
            dsn,
            "--seconds",
            "2",
            "--fold-deltas",
            "5000",
            "--backfill",
            "5000",
            "--parallel-deltas",
            "20000",
            "--repeat",
            "1",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = json.loads((tmp_path / "compactor.json").read_text())
    # each fold-rate case asserted in the study that every delta was folded into the total
    assert [(f["case"], f["deltas"]) for f in res["fold_rate"]] == [
        ("live (last minute)", 5000),
        ("late (last hour)", 5000),
        ("backfill (last year)", 5000),
    ]
    assert res["lag"]["ingest_per_s"] > 0 and res["lag"]["seconds"] == 2
    assert res["backfill"]["backfill_increments"] == 5000 and res["backfill"]["live_rate_per_s"] == 5000
    lines = r.stdout.splitlines()
    for f in res["fold_rate"]:
        assert any(line.startswith(f"  fold rate, {f['case']}") for line in lines), f["case"]
    assert any(line.startswith("  lag under max single-row ingest:") for line in lines)
    assert any(line.startswith("  backfill: 5,000 increments over a year") for line in lines)
    # the parallel folds, small, and the ceiling beside them
    assert res["parallel_folds"]["deltas"] == 20000 and len(res["parallel_folds"]["runs"]) == 1
