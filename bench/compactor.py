"""The compactor study (`make bench-compactor`).

1. fold rate: deltas folded per second, 1,000 keys, every granularity;
   timestamps in the last minute (live), the last hour (late), the last
   year (backfill).
2. lag under sustained maximum single-row ingest (pgbench, 16 clients,
   each increment its own transaction) with tally.compact_loop running.
3. backfill while live: a year of history through increment_counters
   (10,000 per call) while pgbench keeps writing live increments; the
   backfill's insert and fold throughput and the live lag meanwhile. Default
   retention: buckets older than 7 days (minute) / 90 days (hour) are
   skipped, day/week/month and the total get everything.

4. parallel folds: a backfill of 600,000 increments over 60,000 keys with
   timestamps spread over a year, ingested first (no compactor running),
   then folded by one compactor (CALL tally.compact()) and by two compactors
   folding one key slice each at once (CALL tally.compact(p_slice => k,
   p_slices => 2) in two sessions), side by side, `--repeat` times; the
   compactors' sessions are sampled meanwhile (pg_stat_activity: on CPU or
   waiting, and on what).

   Beside them, the ceiling: the same backfill (same keys and timestamps)
   moved by the bare statements a fold has to run, with no tally machinery
   (no chunk bookkeeping, no partition checks, no scratch table of the
   fold's, no quarantine): DELETE the deltas RETURNING them, pre-aggregated
   per (counter, key, minute), then one INSERT ... SELECT ... GROUP BY ...
   ON CONFLICT DO UPDATE into the totals and into each rollup table (the
   counter's retention applied, as the fold does). Measured twice: in one
   transaction for all the deltas (the limit), and in transactions of
   100,000 deltas taken in shard order (a fold's chunking at the default
   chunk size; these run at the session's work_mem and make their scratch
   table per transaction, so a fold may beat them). Each fold rate is also
   given as a share of both by wall clock, and of the first per CPU
   second of the backend (the runs get different shares of a shared machine).

Usage: python bench/compactor.py --dsn "..." [--seconds 30] [--fold-deltas 2000000]
[--backfill 2000000] [--parallel-deltas 600000] [--repeat 2] [--only parallel] [--out DIR].
Writes compactor.json (default: bench/results/).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.report import RESULTS
from bench.runners import Compactor, PgBench, pct, sample_lag

# increment_counter on one of 1,000 keys: one pgbench transaction
LIVE = "\\set k random(1, 1000)\nSELECT tally.increment_counter('{counter}', :k::text);\n"


def fresh_counter(conn: psycopg.Connection, name: str, durable: bool = False) -> None:
    if conn.execute("SELECT 1 FROM tally.counters WHERE name = %s", (name,)).fetchone():
        conn.execute("SELECT tally.drop_counter(%s)", (name,))
    conn.execute("SELECT tally.create_counter(%s, p_durable => %s)", (name, durable))


def load_deltas(dsn: str, counter: str, n: int, spread: timedelta, per_call: int = 10_000) -> float:
    """Insert n increments over 1,000 keys through increment_counters; returns increments/s."""
    rnd = random.Random(1)
    now = datetime.now(UTC)
    t0 = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        done = 0
        while done < n:
            k = min(per_call, n - done)
            keys = [str(rnd.randint(1, 1000)) for _ in range(k)]
            ats = [now - spread * rnd.random() for _ in range(k)]
            conn.execute(
                "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
                ([counter] * k, keys, [1] * k, ats),
            )
            done += k
    return n / (time.monotonic() - t0)


def fold_rate(dsn: str, n: int, spread: timedelta, label: str) -> dict:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CALL tally.compact()")
        fresh_counter(conn, "bench_fold")
        load_deltas(dsn, "bench_fold", n, spread)
        t0 = time.monotonic()
        conn.execute("CALL tally.compact()")
        secs = time.monotonic() - t0
        assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0
        total = conn.execute(
            "SELECT sum(value) FROM tally.totals t JOIN tally.counters c ON c.id = t.counter_id"
            " WHERE c.name = 'bench_fold'"
        ).fetchone()[0]
        assert total == n, (total, n)
    r = {"case": label, "deltas": n, "seconds": round(secs, 3), "deltas_per_s": round(n / secs)}
    print(f"  fold rate, {label:<28} {n:>9,} deltas in {secs:6.2f} s = {n / secs:>10,.0f} deltas/s")
    return r


def lag_under_ingest(dsn: str, seconds: int) -> dict:
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_counter(conn, "bench_live")
    with PgBench(dsn) as pg, Compactor(dsn, seconds=5, interval=0.5):
        bench = pg.start("live", LIVE.format(counter="bench_live"), 16, seconds, protocol="simple")
        lags = sample_lag(dsn, lambda: bench.poll() is not None)
        tps, _ = pg.result(bench)
    r = {
        "ingest_per_s": round(tps),
        "lag_p50_s": round(statistics.median(lags), 3),
        "lag_p99_s": round(pct(lags, 0.99), 3),
        "lag_max_s": round(max(lags), 3),
        "seconds": seconds,
    }
    print(
        f"  lag under max single-row ingest: {tps:,.0f} increments/s (16 clients), lag p50 "
        f"{r['lag_p50_s']:.2f} s, p99 {r['lag_p99_s']:.2f} s, max {r['lag_max_s']:.2f} s"
    )
    return r


def backfill_while_live(dsn: str, n: int, live_rate: int = 5_000) -> dict:
    """A year of history through the batch API while live increments keep
    arriving at `live_rate`/s (pgbench -R, 8 clients)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_counter(conn, "bench_live")
        fresh_counter(conn, "bench_backfill")
        live_id = conn.execute("SELECT id FROM tally.counters WHERE name = 'bench_live'").fetchone()[0]
        backfill_id = conn.execute("SELECT id FROM tally.counters WHERE name = 'bench_backfill'").fetchone()[0]
    lags: list[float] = []
    done_event = threading.Event()

    def sampler() -> None:
        # Live lag: age of the oldest pending live increment, all along.
        with psycopg.connect(dsn, autocommit=True) as probe:
            while not done_event.is_set():
                lags.append(
                    float(
                        probe.execute(
                            "SELECT coalesce(extract(epoch FROM now() - min(written_at)), 0) FROM tally.delta"
                            " WHERE counter_id = %s",
                            (live_id,),
                        ).fetchone()[0]
                    )
                )
                time.sleep(0.25)

    with PgBench(dsn) as pg, Compactor(dsn, seconds=5, interval=0.5):
        bench = pg.start("live", LIVE.format(counter="bench_live"), 8, 3600, rate=live_rate, protocol="simple")
        probe = threading.Thread(target=sampler)
        probe.start()
        time.sleep(3)
        t0 = time.monotonic()
        insert_rate = load_deltas(dsn, "bench_backfill", n, timedelta(days=365))
        with psycopg.connect(dsn, autocommit=True) as conn:
            while conn.execute(
                "SELECT EXISTS (SELECT FROM tally.delta WHERE counter_id = %s)", (backfill_id,)
            ).fetchone()[0]:
                time.sleep(0.25)
        done = time.monotonic() - t0
        done_event.set()
        probe.join()
        pg.stop(bench)
    r = {
        "backfill_increments": n,
        "backfill_insert_per_s": round(insert_rate),
        "backfill_folded_in_s": round(done, 2),
        "backfill_end_to_end_per_s": round(n / done),
        "live_rate_per_s": live_rate,
        "live_lag_p50_s": round(statistics.median(lags), 3),
        "live_lag_p99_s": round(pct(lags, 0.99), 3),
        "live_lag_max_s": round(max(lags), 3),
    }
    print(
        f"  backfill: {n:,} increments over a year inserted at {insert_rate:,.0f}/s and all folded"
        f" {done:.1f} s after start ({n / done:,.0f}/s end to end) while live increments kept arriving at"
        f" {live_rate:,}/s; live lag meanwhile p50 {r['live_lag_p50_s']:.2f} s, p99 {r['live_lag_p99_s']:.2f} s,"
        f" max {r['live_lag_max_s']:.2f} s"
    )
    return r


def _ingest_backfill(dsn: str, counter: str, n: int, keys: int, seed: int, per_call: int = 10_000) -> float:
    """n increments of 1 over `keys` keys, timestamps over the last year,
    through increment_counters; returns increments/s."""
    rnd = random.Random(seed)
    now = datetime.now(UTC)
    t0 = time.monotonic()
    with psycopg.connect(dsn, autocommit=True) as conn:
        done = 0
        while done < n:
            k = min(per_call, n - done)
            conn.execute(
                "SELECT tally.increment_counters(%s::text[], %s::text[], %s::bigint[], %s::timestamptz[])",
                (
                    [counter] * k,
                    [str(rnd.randint(1, keys)) for _ in range(k)],
                    [1] * k,
                    [now - timedelta(days=365) * rnd.random() for _ in range(k)],
                ),
            )
            done += k
    return n / (time.monotonic() - t0)


def _sample_sessions(dsn: str, app: str, stop: threading.Event, seen: Counter) -> None:
    """Every 50 ms: what each session named `app` is doing (on CPU, or the
    wait event it waits on)."""
    with psycopg.connect(dsn, autocommit=True) as probe:
        while not stop.is_set():
            for state, wtype, wevent in probe.execute(
                "SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE application_name = %s", (app,)
            ).fetchall():
                if state == "active":
                    seen["on CPU" if wtype is None else f"{wtype}:{wevent}"] += 1
                else:
                    seen["idle (between calls)"] += 1
            time.sleep(0.05)


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process on this machine has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far (/proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = ticks[3] + ticks[4]
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK"), sum(ticks) / os.sysconf("SC_CLK_TCK")


def _fold_with(dsn: str, slices: int, app: str) -> tuple[float, float, float]:
    """Fold everything pending with `slices` compactors at once (1: a plain
    CALL tally.compact()); returns the seconds until the last one returned,
    the CPU seconds the compactors' backends used (the server runs on this
    machine) and the share of the machine's CPU busy meanwhile (everyone's)."""
    errors: list[BaseException] = []
    cpu: list[float] = []
    ready = threading.Barrier(slices + 1)

    def one(k: int) -> None:
        try:
            with psycopg.connect(dsn, autocommit=True, application_name=app) as conn:
                pid = conn.info.backend_pid
                before = _cpu_seconds(pid)
                ready.wait()
                if slices == 1:
                    conn.execute("CALL tally.compact()")
                else:
                    conn.execute("CALL tally.compact(100000, 5, %s::integer, %s::integer)", (k, slices))
                cpu.append(_cpu_seconds(pid) - before)
        except BaseException as exc:  # reported below
            errors.append(exc)
            ready.abort()

    threads = [threading.Thread(target=one, args=(k,)) for k in range(slices)]
    for t in threads:
        t.start()
    ready.wait()
    busy0, total0 = _machine_busy()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    busy1, total1 = _machine_busy()
    if errors:
        raise errors[0]
    return secs, sum(cpu), (busy1 - busy0) / max(total1 - total0, 1e-9)


GRANULARITIES = ("minute", "hour", "day", "week", "month")


def _bare_fold(conn: psycopg.Connection, counter_id: int, cutoffs: dict[str, str], chunk: list | None) -> int:
    """One transaction of the ceiling: DELETE the counter's deltas (all, or
    those at the row ids `chunk` = [shard, tids]) RETURNING them,
    pre-aggregated per (counter, key, minute) into a temporary table, then
    one sorted upsert into the totals and one into each rollup table.
    Returns how many deltas it moved."""
    with conn.transaction():
        if chunk is None:
            picked, args = "tally.delta AS d WHERE d.counter_id = %s", [counter_id]
        else:
            picked, args = (
                f"{chunk[0]} AS d WHERE d.ctid = ANY (%s::tid[]) AND d.counter_id = %s",
                [chunk[1], counter_id],
            )
        conn.execute(
            "CREATE TEMPORARY TABLE bare_batch ON COMMIT DROP AS"
            f" WITH moved AS (DELETE FROM {picked} RETURNING d.counter_id, d.key, d.delta, d.at)"
            " SELECT m.counter_id, m.key, date_trunc('minute', m.at) AS minute, sum(m.delta) AS delta, count(*) AS n"
            " FROM moved AS m GROUP BY 1, 2, 3",
            args,
        )
        moved = conn.execute("SELECT coalesce(sum(n), 0)::bigint FROM bare_batch").fetchone()[0]
        conn.execute(
            "INSERT INTO tally.totals AS t (counter_id, key, value)"
            " SELECT b.counter_id, b.key, sum(b.delta) FROM bare_batch AS b GROUP BY 1, 2 ORDER BY 1, 2"
            " ON CONFLICT (counter_id, key) DO UPDATE SET value = t.value + excluded.value"
        )
        for g in GRANULARITIES:
            conn.execute(
                f"INSERT INTO tally.rollup_{g} AS r (counter_id, key, bucket, value)"
                f" SELECT b.counter_id, b.key, date_trunc('{g}', b.minute), sum(b.delta) FROM bare_batch AS b"
                " WHERE b.minute >= %s::timestamptz GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
                " ON CONFLICT (counter_id, key, bucket) DO UPDATE SET value = r.value + excluded.value",
                (cutoffs[g],),
            )
    return moved


def _chunks(conn: psycopg.Connection, counter_id: int, limit: int):
    """The row ids of the counter's deltas, `limit` at a time, shard by
    shard, each chunk read by a TID range scan from where the last stopped
    (as a fold reads them); yields [shard, tids]."""
    shards = conn.execute(
        "SELECT DISTINCT d.tableoid::regclass::text FROM tally.delta AS d WHERE d.counter_id = %s ORDER BY 1",
        (counter_id,),
    ).fetchall()
    for (shard,) in shards:
        resume = "(0,0)"
        while True:
            tids = conn.execute(
                f"SELECT ARRAY(SELECT s.ctid FROM {shard} AS s WHERE s.ctid >= %s::tid LIMIT %s)::text[]",
                (resume, limit),
            ).fetchone()[0]
            if not tids:
                break
            yield [shard, tids]
            resume = tids[-1]


def fold_ceiling(dsn: str, name: str, n: int, keys: int, seed: int, limit: int | None) -> dict:
    """The same backfill as a measured fold (same seed), moved by the bare
    statements (_bare_fold) in one transaction (limit None) or in
    transactions of `limit` deltas; checked exactly like a fold."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        fresh_counter(conn, name)
        conn.execute("CALL tally.compact()")
        conn.execute("CHECKPOINT")
        _ingest_backfill(dsn, name, n, keys, seed=seed)
        counter_id = conn.execute("SELECT id FROM tally.counters WHERE name = %s", (name,)).fetchone()[0]
        # the counter's retention, as the fold applies it (a constant each)
        cutoffs = {
            g: conn.execute("SELECT tally._cutoff(%s, %s)::text", (counter_id, g)).fetchone()[0] for g in GRANULARITIES
        }
        pid = conn.info.backend_pid
        cpu0 = _cpu_seconds(pid)
        busy0, total0 = _machine_busy()
        t0 = time.monotonic()
        if limit is None:
            moved = _bare_fold(conn, counter_id, cutoffs, None)
        else:
            moved = sum(_bare_fold(conn, counter_id, cutoffs, chunk) for chunk in _chunks(conn, counter_id, limit))
        secs = time.monotonic() - t0
        cpu_s = _cpu_seconds(pid) - cpu0
        busy1, total1 = _machine_busy()
        assert moved == n, (moved, n)
        total = conn.execute("SELECT sum(value) FROM tally.totals WHERE counter_id = %s", (counter_id,)).fetchone()[0]
        assert total == n, (total, n)
    return {
        "seconds": round(secs, 2),
        "deltas_per_s": round(n / secs),
        "compactor_cpu_s": round(cpu_s, 1),
        "deltas_per_cpu_s": round(n / cpu_s) if cpu_s else None,
        "machine_busy": round((busy1 - busy0) / max(total1 - total0, 1e-9), 3),
        "load_1min": round(os.getloadavg()[0], 2),
    }


def parallel_folds(dsn: str, n: int, keys: int = 60_000, repeat: int = 2) -> dict:
    """The backfill folded by 1 compactor and by 2 slice compactors, side by side."""
    runs = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CALL tally.compact()")
        # Warm-up: the rollup partitions a year of buckets needs exist before
        # either measured fold runs, so neither pays for creating them.
        fresh_counter(conn, "bench_par_warmup")
        _ingest_backfill(dsn, "bench_par_warmup", 50_000, keys, seed=99)
        conn.execute("CALL tally.compact()")
        for r in range(repeat):
            pair = {}
            # the ceiling first, on the very deltas the folds below get (seed r)
            ceiling = fold_ceiling(dsn, "bench_par_ceiling", n, keys, r, None)
            chunked = fold_ceiling(dsn, "bench_par_ceiling_chunks", n, keys, r, 100_000)
            for slices in (1, 2):
                name = f"bench_par_{slices}"
                fresh_counter(conn, name)
                conn.execute("CALL tally.compact()")
                conn.execute("CHECKPOINT")
                insert_rate = _ingest_backfill(dsn, name, n, keys, seed=r)
                app = f"tally bench fold {slices}"
                stop = threading.Event()
                seen: Counter = Counter()
                probe = threading.Thread(target=_sample_sessions, args=(dsn, app, stop, seen))
                probe.start()
                secs, cpu_s, machine_busy = _fold_with(dsn, slices, app)
                stop.set()
                probe.join()
                assert conn.execute("SELECT tally._pending()").fetchone()[0] == 0
                total = conn.execute(
                    "SELECT sum(t.value) FROM tally.totals AS t JOIN tally.counters AS c ON c.id = t.counter_id"
                    " WHERE c.name = %s",
                    (name,),
                ).fetchone()[0]
                assert total == n, (total, n)
                samples = sum(seen.values()) or 1
                pair[slices] = {
                    "seconds": round(secs, 2),
                    "deltas_per_s": round(n / secs),
                    "insert_per_s": round(insert_rate),
                    "sessions": {k: round(v / samples, 3) for k, v in seen.most_common()},
                    "load_1min": round(os.getloadavg()[0], 2),
                    # CPU the compactors' backends got: cores used on average,
                    # and deltas folded per CPU second (the cost of a delta)
                    "compactor_cpu_s": round(cpu_s, 1),
                    "compactor_cores": round(cpu_s / secs, 2),
                    "deltas_per_cpu_s": round(n / cpu_s) if cpu_s else None,
                    "machine_busy": round(machine_busy, 3),
                }
            ratio = pair[1]["seconds"] / pair[2]["seconds"]
            for x in (pair[1], pair[2]):
                x["of_ceiling"] = round(x["deltas_per_s"] / ceiling["deltas_per_s"], 2)
                x["of_ceiling_chunks"] = round(x["deltas_per_s"] / chunked["deltas_per_s"], 2)
                if x["deltas_per_cpu_s"] and ceiling["deltas_per_cpu_s"]:
                    x["cpu_of_ceiling"] = round(x["deltas_per_cpu_s"] / ceiling["deltas_per_cpu_s"], 2)
            runs.append(
                {
                    "ceiling": ceiling,
                    "ceiling_chunks": chunked,
                    "one": pair[1],
                    "two_slices": pair[2],
                    "ratio": round(ratio, 2),
                }
            )
            for label, x in (("one transaction", ceiling), ("100,000 per transaction", chunked)):
                print(
                    f"  ceiling, run {r + 1}: bare DELETE + upserts, {label}: {x['deltas_per_s']:>7,}/s"
                    f" ({x['seconds']:.1f} s; {x['deltas_per_cpu_s']:,} deltas per CPU s), machine"
                    f" {x['machine_busy']:.0%} busy (load {x['load_1min']})"
                )
            print(
                f"  fold vs ceiling, run {r + 1}: 1 compactor {pair[1]['of_ceiling']:.0%} of the ceiling"
                f" ({pair[1].get('cpu_of_ceiling', 0):.0%} per CPU s), {pair[1]['of_ceiling_chunks']:.0%} of"
                f" its 100,000-delta transactions; 2 slice compactors {pair[2]['of_ceiling']:.0%}"
            )
            print(
                f"  parallel folds, run {r + 1}: {n:,} deltas over {keys:,} keys (a year):"
                f" 1 compactor {pair[1]['deltas_per_s']:>7,}/s ({pair[1]['seconds']:.1f} s),"
                f" 2 slice compactors {pair[2]['deltas_per_s']:>7,}/s ({pair[2]['seconds']:.1f} s): {ratio:.2f}x"
            )
            for slices in (1, 2):
                x = pair[slices]
                top = ", ".join(f"{k} {v:.0%}" for k, v in list(x["sessions"].items())[:4])
                print(
                    f"    {slices} compactor(s): {x['compactor_cores']:.2f} cores used"
                    f" ({x['deltas_per_cpu_s']:,} deltas per CPU s), machine {x['machine_busy']:.0%} busy"
                    f" (load {x['load_1min']}); sessions: {top}"
                )
    return {"deltas": n, "keys": keys, "cores": os.cpu_count(), "runs": runs}


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench/compactor.py", description="the compactor study (make bench-compactor)")
    ap.add_argument("--dsn", default=os.environ.get("TALLY_DSN"), help="a migrated database (default: $TALLY_DSN)")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--fold-deltas", type=int, default=2_000_000)
    ap.add_argument("--backfill", type=int, default=2_000_000)
    ap.add_argument("--parallel-deltas", type=int, default=600_000)
    ap.add_argument("--repeat", type=int, default=2, help="runs of the parallel-folds comparison (default 2)")
    ap.add_argument("--only", choices=["parallel"], help="run only this part (its own compactor-parallel.json)")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"directory for compactor.json (default: {RESULTS})")
    args = ap.parse_args()
    if not args.dsn:
        ap.error("pass --dsn or set TALLY_DSN")
    print("tally compactor benchmark")
    results: dict = {"when": datetime.now(UTC).isoformat(timespec="seconds")}
    if args.only is None:
        results |= {
            "fold_rate": [
                fold_rate(args.dsn, args.fold_deltas, timedelta(minutes=1), "live (last minute)"),
                fold_rate(args.dsn, args.fold_deltas, timedelta(hours=1), "late (last hour)"),
                fold_rate(args.dsn, args.fold_deltas, timedelta(days=365), "backfill (last year)"),
            ],
            "lag": lag_under_ingest(args.dsn, args.seconds),
            "backfill": backfill_while_live(args.dsn, args.backfill),
        }
    results["parallel_folds"] = parallel_folds(args.dsn, args.parallel_deltas, repeat=args.repeat)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / ("compactor.json" if args.only is None else f"compactor-{args.only}.json")
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
